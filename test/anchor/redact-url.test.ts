/**
 * Credentials never leave the process in a URL: every form providers use, parseable or not, and
 * the errors that carry a URL (config validation, the RPC transport).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { inspect } from "node:util";
import { JsonRpcProvider } from "ethers";
import { describe, expect, it } from "vitest";
import { redactText, redactUrl, redactedError } from "../../gateway/src/core/errors.ts";
import { createLogger } from "../../gateway/src/core/log.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { RpcPool, parseRpcUrl } from "../../gateway/src/chain/rpc.ts";
import { ChainError, ChainNetworkError, translateEthersError } from "../../gateway/src/chain/errors.ts";

const HEX40 = "0123456789abcdef0123456789abcdef01234567";

describe("redactUrl", () => {
  it.each([
    ["user:password", "http://alice:S3cret@127.0.0.1:8545/", "http://***:***@127.0.0.1:8545/"],
    ["user only", "https://S3cret@rpc.example/", "https://***@rpc.example/"],
    ["40-hex path key, trailing slash", `https://x.quiknode.pro/${HEX40}/`, "https://x.quiknode.pro/***/"],
    ["40-hex path key, no trailing slash", `https://x.quiknode.pro/${HEX40}`, "https://x.quiknode.pro/***"],
    [
      "/v2/<key> (Alchemy)",
      "https://opt-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOp",
      "https://opt-mainnet.g.alchemy.com/v2/***",
    ],
    [
      "/v3/<key> (Infura)",
      `https://optimism-mainnet.infura.io/v3/${HEX40.slice(0, 32)}`,
      "https://optimism-mainnet.infura.io/v3/***",
    ],
    [
      "?apikey=",
      "https://api.example/rpc?apikey=S3cret&chain=10",
      "https://api.example/rpc?apikey=***&chain=***",
    ],
    ["?token= and #fragment", "https://api.example/?token=S3cret#S3cret", "https://api.example/?token=***"],
    ["an unnamed key-like query value", `https://api.example/?k=${HEX40}`, "https://api.example/?k=***"],
    [
      "a bare query key (no =)",
      "https://api.example/rpc?S3cretKey123&chain=10",
      "https://api.example/rpc?***&chain=***",
    ],
    [
      "a bare query key after a named one",
      "https://api.example/?a=1&S3cret",
      "https://api.example/?a=***&***",
    ],
    [
      "a query key under a name no rule knows",
      "https://api.example/?access=S3cret",
      "https://api.example/?access=***",
    ],
    ["a short mixed-case path key", "https://rpc.example/rpc/S3cret", "https://rpc.example/rpc/***"],
    ["a letters-only mixed-case path key", "https://rpc.example/AbCdEfGhIj/", "https://rpc.example/***/"],
    ["a key as a host name label", `https://${HEX40.slice(0, 20)}.rpc.example/`, "https://***.rpc.example/"],
    [
      "a long letters-only host label",
      `https://${"abcdefgh".repeat(4)}.rpc.example`,
      "https://***.rpc.example",
    ],
  ])("behavior: %s", (_name, url, want) => {
    expect(redactUrl(url)).toBe(want);
    expect(redactUrl(url)).not.toMatch(/S3cret|0123456789abcdef|AbCdEfGh|abcdefghabcdefgh/);
  });

  it("behavior: plain URLs are left readable", () => {
    expect(redactUrl("https://mainnet.optimism.io")).toBe("https://mainnet.optimism.io");
    expect(redactUrl("https://rpc.ankr.com/optimism")).toBe("https://rpc.ankr.com/optimism");
    expect(redactUrl("http://127.0.0.1:8545")).toBe("http://127.0.0.1:8545");
    expect(redactUrl("http://127.0.0.1:8545/")).toBe("http://127.0.0.1:8545/");
    expect(redactUrl("ws://[::1]:9001/mqtt")).toBe("ws://[::1]:9001/mqtt");
    expect(redactUrl("https://arb-sepolia.example/v2")).toBe("https://arb-sepolia.example/v2");
    expect(redactUrl("mqtt://127.0.0.1:1883")).toBe("mqtt://127.0.0.1:1883");
  });

  it.each([
    ["unclosed IPv6 host", "mqtt://u:S3cret@[::1"],
    ["bad port", "http://u:S3cret@host:99999/"],
    ["bad port with a path key", `http://host:99999/${HEX40}/?token=S3cret`],
    ["no scheme", "u:S3cret@host"],
    ["garbage with a key", `:::/v2/S3cretS3cret`],
    ["bad port, key in the host", `http://${HEX40}.example:99999/`],
    ["bad port, unnamed query key", "http://host:99999/?access=S3cret"],
    ["bad port, bare query key", "http://host:99999/?S3cret"],
    // A password with an unencoded / ? or # (generated passwords have them): the userinfo ends at
    // the last @, not at the first of those.
    ["password with a /", "https://alice:pa/S3cret@rpc.example/v2/x"],
    ["password with a #", "https://alice:pa#S3cret@rpc.example/"],
    ["password with a ?", "https://alice:pa?S3cret@rpc.example/"],
    ["key in place of a port", "https://host.example:S3cretKey/rpc"],
    // Parses (host "alice", port 12, the rest a fragment or path), yet the @ ended a password.
    ["password of digits then #", "https://alice:12#S3cret@rpc.example/"],
    ["password of digits then /", "https://alice:12/S3cret@rpc.example/"],
  ])(
    "behavior: a URL that does not parse, or misreads its userinfo (%s), is redacted as text",
    (_name, url) => {
      const r = redactUrl(url);
      expect(r).not.toMatch(/S3cret|0123456789abcdef|alice|pa\b|:12\b/);
    },
  );
});

describe("redactText and redactedError", () => {
  it("behavior: every URL inside free text is redacted; the text around it is kept", () => {
    expect(
      redactText(
        `server response 401 (info={ "requestUrl": "http://127.0.0.1:1/${HEX40}/" }) at https://a.example/?access=S3cret`,
      ),
    ).toBe(
      'server response 401 (info={ "requestUrl": "http://127.0.0.1:1/***/" }) at https://a.example/?access=***',
    );
    expect(redactText("no URL here: ops@plant.example")).toBe("no URL here: ops@plant.example");
  });

  it("behavior: a redacted copy keeps name, code, message shape and causes, and nothing that names the key", () => {
    const inner = Object.assign(new Error(`GET https://rpc.example/v2/S3cretS3cret failed`), {
      code: "ECONNRESET",
    });
    const outer = Object.assign(
      new Error(`request to https://u:S3cret@rpc.example/${HEX40} failed`, { cause: inner }),
      {
        name: "FetchError",
        code: "SERVER_ERROR",
        info: { requestUrl: `https://rpc.example/${HEX40}` },
      },
    );
    const copy = redactedError(outer);
    expect(copy).toMatchObject({
      name: "FetchError",
      code: "SERVER_ERROR",
      message: "request to https://***:***@rpc.example/*** failed",
    });
    expect(copy.cause).toMatchObject({
      code: "ECONNRESET",
      message: "GET https://rpc.example/v2/*** failed",
    });
    expect(copy.stack).toContain("request to https://***:***@rpc.example/*** failed");
    expect(inspect(copy, { depth: 10 })).not.toMatch(/S3cret|0123456789abcdef/);
    expect(redactedError("plain string").message).toBe("plain string");
  });
});

describe("errors that carry a URL", () => {
  const leaks = (e: unknown): boolean => /S3cret/.test(`${String(e)}\n${inspect(e, { depth: 10 })}`);

  it("error: an unparseable mqtt.url or chain.rpcUrl is a ConfigError naming the setting, without the password", () => {
    for (const cfg of [
      { mqtt: { url: "mqtt://u:S3cret@[::1" } },
      { mqtt: { url: "mqtt://u:S3cret@host:99999" } },
      { chain: { rpcUrl: "http://u:S3cret@[::1" } },
      { chain: { rpcUrls: ["http://127.0.0.1:8545", "https://u:S3cret@host:70000/"] } },
    ]) {
      let err: unknown;
      try {
        resolveConfig(cfg);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).path).toMatch(/^(mqtt\.url|chain\.rpcUrls?(\.\d+)?)$/);
      expect(leaks(err)).toBe(false);
    }
  });

  it("behavior: user:password@ in an RPC URL becomes a Basic authorization header (percent-decoded) and leaves the URL", () => {
    const p = parseRpcUrl("https://al%40ice:p%3As@rpc.example/v1/");
    expect(p.href).toBe("https://rpc.example/v1/");
    expect(p.auth).toBe(`Basic ${Buffer.from("al@ice:p:s").toString("base64")}`);
    expect(parseRpcUrl("https://rpc.example/v1/").auth).toBeUndefined();
  });

  it("error: the RPC transport refuses an unparseable URL with a redacted ChainError and no cause", () => {
    let err: unknown;
    try {
      parseRpcUrl("http://u:S3cret@[::1");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ChainError);
    expect((err as ChainError).code).toBe("CHAIN_BAD_URL");
    expect((err as Error).cause).toBeUndefined();
    expect(leaks(err)).toBe(false);
    expect(() => new RpcPool({ urls: ["ws://u:S3cret@host/"] })).toThrow(/http:\/\/ or https:\/\//);
  });

  it("error: an unreachable endpoint with credentials and a path key: the error names it redacted", async () => {
    const pool = new RpcPool({
      urls: [`http://u:S3cret@127.0.0.1:1/${HEX40}/`],
      healthCheckIntervalMs: 0,
      attempts: 1,
    });
    let err: unknown;
    try {
      await pool.request("eth_chainId");
    } catch (e) {
      err = e;
    }
    pool.close();
    expect(err).toBeInstanceOf(ChainNetworkError);
    expect((err as Error).message).toContain("http://***:***@127.0.0.1:1/***/");
    expect(leaks(err)).toBe(false);
    expect(`${String(err)}${inspect(err)}`).not.toContain(HEX40);
  });

  it("security: a host name that does not resolve (ENOTFOUND, EAI_AGAIN) is a network error naming the redacted URL, not the raw resolver message", () => {
    const host = "SECRETkey1234567890abc.invalid";
    for (const code of ["ENOTFOUND", "EAI_AGAIN"]) {
      const raw = Object.assign(new Error(`getaddrinfo ${code} ${host.toLowerCase()}`), { code });
      const err = translateEthersError(raw, `http://${host}:18599/`, []);
      expect(err).toBeInstanceOf(ChainNetworkError);
      expect(err.shortMessage).toBe("RPC endpoint unreachable: http://***.invalid:18599/");
    }
  });

  it("security: an ethers provider error (real JsonRpcProvider, HTTP 401) translated and logged names no key", async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 401;
      res.end("unauthorized");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${HEX40}/?access=S3cret`;
    const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, batchMaxCount: 1 });
    let raw: unknown;
    try {
      await provider.send("eth_chainId", []);
    } catch (e) {
      raw = e;
    } finally {
      provider.destroy();
      server.close();
    }
    // The raw ethers error does carry the key (what the translation must not keep).
    expect(inspect(raw, { depth: 10 })).toContain(HEX40);
    const err = translateEthersError(raw, url, []);
    expect(err).toBeInstanceOf(ChainNetworkError);
    expect((err.cause as { code?: string }).code).toBe("SERVER_ERROR");
    expect(`${String(err)}\n${inspect(err, { depth: 10 })}`).not.toMatch(/S3cret|0123456789abcdef/);
    const out: string[] = [];
    const dest = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk.toString());
        cb();
      },
    });
    createLogger("info", { destination: dest, format: "json" }).error({ err }, "chain request failed");
    expect(out.join("")).toContain("server response 401");
    expect(out.join("")).not.toMatch(/S3cret|0123456789abcdef/);
  });
});
