/**
 * fetchArtifact at its edges: a staging file that cannot be written, and an IPFS gateway that
 * needs credentials (user:password in its URL). The content checks (size, hash, CID) are tested
 * through the update agents (model-agent.anvil.test.ts).
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { cidV1 } from "../../gateway/src/updates/cid.ts";
import { UpdateError } from "../../gateway/src/updates/errors.ts";
import { fetchArtifact } from "../../gateway/src/updates/fetch.ts";

const body = Buffer.from("a release's bytes, for the fetch test\n".repeat(100));
const sha256 = createHash("sha256").update(body).digest("hex");
const dir = (): string => mkdtempSync(join(tmpdir(), "vigil-fetch-"));

let server: Server | undefined;
afterEach(async () => {
  await new Promise((res) => (server ? server.close(res) : res(undefined)));
  server = undefined;
});

/** An IPFS HTTP gateway on 127.0.0.1 that serves `body` to requests with Basic `user:pass` only. */
async function gatewayWithLogin(user: string, pass: string): Promise<number> {
  const expected = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
  server = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(body);
  });
  await new Promise<void>((res) => server!.listen(0, "127.0.0.1", res));
  return (server.address() as { port: number }).port;
}

describe("fetchArtifact", () => {
  it("error: the staging file cannot be written: a FETCH_FAILED rejection, not an 'error' event that ends the process", async () => {
    const d = dir();
    const src = join(d, "release.bin");
    writeFileSync(src, body);
    const staging = join(d, "staging");
    // Every .part name this module can choose for the next fetches is taken by a folder (EISDIR;
    // in the field: ENOSPC, EIO, EROFS).
    for (let k = 1; k <= 20; k++) mkdirSync(join(staging, `${sha256}.${k}.part`), { recursive: true });
    const err = await fetchArtifact(
      { uris: [pathToFileURL(src).href], size: BigInt(body.length), sha256 },
      { stagingDir: staging },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpdateError);
    expect(err).toMatchObject({ code: "FETCH_FAILED" });
    expect((err as UpdateError).details).toMatch(/EISDIR/);
  });

  it("behavior: an IPFS gateway URL with user:password@ logs in with Basic auth; a wrong password fails with HTTP 401 and no message names it", async () => {
    const port = await gatewayWithLogin("project", "s3cret-pw");
    const uri = `ipfs://${await cidV1(body)}`;
    const artifact = { uris: [uri], size: BigInt(body.length), sha256 };
    const staging = join(dir(), "staging");
    const got = await fetchArtifact(artifact, {
      stagingDir: staging,
      ipfsGateway: `http://project:s3cret-pw@127.0.0.1:${port}`,
    });
    expect(readFileSync(got.path)).toEqual(body);

    const err = (await fetchArtifact(
      { ...artifact, sha256: createHash("sha256").update("other").digest("hex") },
      { stagingDir: staging, ipfsGateway: `http://project:wrong-pw@127.0.0.1:${port}` },
    ).catch((e: unknown) => e)) as UpdateError;
    expect(err).toMatchObject({ code: "FETCH_FAILED" });
    expect(err.details).toMatch(/HTTP 401/);
    expect(`${err.message} ${err.details ?? ""}`).not.toMatch(/wrong-pw/);
    expect(readdirSync(staging).filter((f) => f.endsWith(".part"))).toEqual([]);
  });
});
