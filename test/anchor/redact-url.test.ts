/**
 * Credentials never leave the process in a URL: every form providers use, parseable or not, and
 * the errors that carry a URL (config validation, the RPC transport).
 */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { redactUrl } from "../../gateway/src/core/errors.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { RpcPool, parseRpcUrl } from "../../gateway/src/chain/rpc.ts";
import { ChainError, ChainNetworkError } from "../../gateway/src/chain/errors.ts";

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
      "https://api.example/rpc?apikey=***&chain=10",
    ],
    ["?token= and #fragment", "https://api.example/?token=S3cret#S3cret", "https://api.example/?token=***"],
    ["an unnamed key-like query value", `https://api.example/?k=${HEX40}`, "https://api.example/?k=***"],
  ])("behavior: %s", (_name, url, want) => {
    expect(redactUrl(url)).toBe(want);
    expect(redactUrl(url)).not.toMatch(/S3cret|0123456789abcdef|AbCdEfGh/);
  });

  it("behavior: plain URLs are left readable", () => {
    expect(redactUrl("https://mainnet.optimism.io")).toBe("https://mainnet.optimism.io/");
    expect(redactUrl("https://rpc.ankr.com/optimism")).toBe("https://rpc.ankr.com/optimism");
    expect(redactUrl("http://127.0.0.1:8545")).toBe("http://127.0.0.1:8545/");
  });

  it.each([
    ["unclosed IPv6 host", "mqtt://u:S3cret@[::1"],
    ["bad port", "http://u:S3cret@host:99999/"],
    ["bad port with a path key", `http://host:99999/${HEX40}/?token=S3cret`],
    ["no scheme", "u:S3cret@host"],
    ["garbage with a key", `:::/v2/S3cretS3cret`],
  ])("behavior: unparseable URL (%s) is redacted as text", (_name, url) => {
    const r = redactUrl(url);
    expect(r).not.toMatch(/S3cret|0123456789abcdef/);
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
});
