/**
 * fetchArtifact's bounds and redirects against real servers on 127.0.0.1:
 * - the caller's signal (an agent's stop) ends a download in progress at once: INTERRUPTED, its
 *   `.part` removed, no further URI tried;
 * - a file:// source that would block (a FIFO nobody writes: a stand-in for a hung mount) fails
 *   within the per-URI timeout instead of hanging the agent;
 * - a redirect from https:// to plain http:// is refused before anything is sent over http://
 *   (a typed RedirectDowngradeError naming the URI and the fix); other redirects are followed.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { generate } from "selfsigned";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cidV1 } from "../../gateway/src/updates/cid.ts";
import {
  RedirectDowngradeError,
  RedirectInternalError,
  UpdateError,
} from "../../gateway/src/updates/errors.ts";
import { fetchArtifact } from "../../gateway/src/updates/fetch.ts";
import { within } from "./within.ts";

const body = Buffer.from("a release's bytes, for the abort test\n".repeat(2000));
const sha256 = createHash("sha256").update(body).digest("hex");
const size = BigInt(body.length);

const servers: Server[] = [];
const fifos: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((res) => s.close(res));
  }
  // A FIFO open() still blocked (the code before the fix) ends when a writer comes and goes.
  for (const f of fifos.splice(0))
    try {
      closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      /* no reader waiting */
    }
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(s: Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((res) => s.listen(0, "127.0.0.1", res));
  return (s.address() as AddressInfo).port;
}

const staging = (): string => join(mkdtempSync(join(tmpdir(), "vigil-abort-")), "staging");
const parts = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith(".part"));

describe("fetchArtifact: stop and timeouts", () => {
  it("behavior: the caller's signal ends a download in progress at once: INTERRUPTED, its .part removed, the next URI not tried", async () => {
    let hits = 0;
    // Headers and a first part of the body, then nothing: a content source that trickles.
    const gw = `http://127.0.0.1:${await listen(
      createServer((_req, res) => {
        hits++;
        res.writeHead(200, { "content-length": String(body.length) });
        res.write(body.subarray(0, 1000));
      }),
    )}`;
    const dir = staging();
    const ac = new AbortController();
    const uri = `ipfs://${await cidV1(body)}`;
    const p = fetchArtifact(
      { uris: [uri, uri], size, sha256 },
      { stagingDir: dir, ipfsGateway: gw, timeoutMs: 20_000, signal: ac.signal },
    );
    p.catch(() => undefined); // awaited below
    await expect.poll(() => parts(dir).length).toBe(1);
    ac.abort();
    const err = await within(p, 3000);
    expect(err).toBeInstanceOf(UpdateError);
    expect(err).toMatchObject({ code: "INTERRUPTED" });
    expect(parts(dir)).toEqual([]);
    expect(hits).toBe(1);
  });

  it("error: a file:// FIFO nobody writes (a hung mount's stand-in) fails within the per-URI timeout, no .part left", async () => {
    const d = mkdtempSync(join(tmpdir(), "vigil-fifo-"));
    const fifo = join(d, "pipe.bin");
    execFileSync("mkfifo", [fifo]);
    fifos.push(fifo);
    const dir = staging();
    const p = fetchArtifact(
      { uris: [pathToFileURL(fifo).href], size, sha256 },
      { stagingDir: dir, timeoutMs: 500 },
    );
    const err = await within(p, 5000);
    expect(err).toBeInstanceOf(UpdateError);
    expect(err).toMatchObject({ code: "FETCH_FAILED" });
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("fetchArtifact: redirects", () => {
  let pems: { cert: string; key: string };
  let tlsEnv: string | undefined;
  beforeAll(async () => {
    const g = await generate([{ name: "commonName", value: "vigil-test" }], {
      keySize: 2048,
      extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
    });
    pems = { cert: g.cert, key: g.private };
    // fetch takes no CA option: this test process accepts the self-signed certificate
    // (NODE_EXTRA_CA_CERTS is read at start only). Restored after.
    tlsEnv = process.env["NODE_TLS_REJECT_UNAUTHORIZED"];
    process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";
  });
  afterAll(() => {
    if (tlsEnv === undefined) delete process.env["NODE_TLS_REJECT_UNAUTHORIZED"];
    else process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = tlsEnv;
  });

  /** An https:// server on 127.0.0.1 that serves `body` at /good and runs `route` for other paths. */
  async function httpsServer(route: Handler): Promise<number> {
    return listen(
      createTlsServer(pems, (req, res) => (req.url === "/good" ? res.end(body) : route(req, res))),
    );
  }

  it("error: an https:// URI redirected to plain http:// is refused before any request over http://, with a typed error naming the URI and the fix", async () => {
    const plain: string[] = [];
    const hp = await listen(
      createServer((req, res) => {
        plain.push(req.url ?? "");
        res.end(body);
      }),
    );
    const sp = await httpsServer((_req, res) =>
      res.writeHead(302, { location: `http://127.0.0.1:${hp}/good` }).end(),
    );
    const dir = staging();
    const uri = `https://127.0.0.1:${sp}/release.bin`;
    const err = (await fetchArtifact({ uris: [uri], size, sha256 }, { stagingDir: dir }).catch(
      (e: unknown) => e,
    )) as UpdateError;
    expect(err).toBeInstanceOf(UpdateError);
    expect(err.code).toBe("FETCH_FAILED");
    const cause = err.walk((c) => c instanceof RedirectDowngradeError) as RedirectDowngradeError;
    expect(cause).toBeInstanceOf(RedirectDowngradeError);
    expect(cause.shortMessage).toBe(
      `${uri} redirects to plain http:// (http://127.0.0.1:${hp}/good); refused: have the server redirect to https://, or publish the final https:// URI`,
    );
    expect(err.details).toContain(cause.shortMessage);
    expect(plain).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("attack: a release host outside the gateway's networks that redirects to an internal address is refused before any request goes there (SSRF); an internal release host may redirect inside", async () => {
    const hits: string[] = [];
    const inside = await httpsServer((req, res) => {
      hits.push(req.url ?? "");
      res.end("the metadata service's answer");
    });
    const outside = await httpsServer((_req, res) =>
      res.writeHead(302, { location: `https://127.0.0.1:${inside}/latest/meta-data/` }).end(),
    );
    // Every server here is on loopback: the test says which port stands for an internal host.
    const internal = async (u: URL): Promise<boolean> => u.port === String(inside);
    const dir = staging();
    const uri = `https://127.0.0.1:${outside}/release.bin`;
    const err = (await fetchArtifact({ uris: [uri], size, sha256 }, { stagingDir: dir, internal }).catch(
      (e: unknown) => e,
    )) as UpdateError;
    expect(err.code).toBe("FETCH_FAILED");
    const cause = err.walk((c) => c instanceof RedirectInternalError) as RedirectInternalError;
    expect(cause).toBeInstanceOf(RedirectInternalError);
    expect(cause.shortMessage).toBe(
      `${uri} redirects to an internal address (https://127.0.0.1:${inside}/latest/meta-data/); refused: publish the file's own URI, or serve the release from a host inside this network`,
    );
    expect(hits).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    // The same redirect from a release host that is internal itself is followed.
    const good = await httpsServer((_req, res) =>
      res.writeHead(302, { location: `https://127.0.0.1:${outside}/good` }).end(),
    );
    const alsoInside = async (u: URL): Promise<boolean> =>
      u.port === String(good) || u.port === String(outside);
    const f = await fetchArtifact(
      { uris: [`https://127.0.0.1:${good}/release.bin`], size, sha256 },
      { stagingDir: dir, internal: alsoInside },
    );
    expect(readFileSync(f.path)).toEqual(body);
  });

  it("behavior: redirects that do not downgrade are followed: https:// to https:// (Basic auth dropped for another origin), and http:// to http://", async () => {
    const auth: Array<string | undefined> = [];
    const other = await httpsServer((req, res) => {
      auth.push(req.headers.authorization);
      res.writeHead(307, { location: "/good" }).end();
    });
    const sp = await httpsServer((req, res) => {
      auth.push(req.headers.authorization);
      res.writeHead(301, { location: `https://127.0.0.1:${other}/moved` }).end();
    });
    const dir = staging();
    const got = await fetchArtifact(
      { uris: [`https://user:s3cret@127.0.0.1:${sp}/release.bin`], size, sha256 },
      { stagingDir: dir },
    );
    expect(readFileSync(got.path)).toEqual(body);
    expect(auth).toEqual([`Basic ${Buffer.from("user:s3cret").toString("base64")}`, undefined]);

    // An http:// IPFS gateway (a local node) that redirects within plain http://.
    const hp = await listen(
      createServer((req, res) =>
        req.url === "/good" ? res.end(body) : res.writeHead(302, { location: "/good" }).end(),
      ),
    );
    const viaIpfs = await fetchArtifact(
      { uris: [`ipfs://${await cidV1(body)}`], size, sha256 },
      { stagingDir: staging(), ipfsGateway: `http://127.0.0.1:${hp}` },
    );
    expect(readFileSync(viaIpfs.path)).toEqual(body);
  });
});
