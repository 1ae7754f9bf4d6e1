/**
 * Fetches a release's file into a staging folder and proves it is the release's bytes.
 *
 * URIs are tried in order (file://, https://, ipfs://CID through the configured HTTP gateway).
 * Every body is streamed to `<staging>/<sha256>.<n>.part`, cut as soon as it passes the recorded size
 * (an endless or oversized body never fills the disk), then must have exactly that size and the
 * release's sha256. For ipfs:// the CID of the bytes is recomputed (cid.ts) and must equal the
 * CID in the URI: the HTTP gateway is never trusted. The first URI that passes wins; the file is
 * renamed to `<staging>/<sha256>` and its path returned. A failed attempt removes its `.part`; the
 * `.part` files a crash left (or one that could not be removed) go before the next fetch.
 */
import { createHash } from "node:crypto";
import {
  createReadStream,
  createWriteStream,
  lstatSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { redactUrl } from "../core/errors.ts";
import { takeBasicAuth } from "../core/url-credentials.ts";
import { redactLine } from "../core/log.ts";
import { UpdateError, type UpdateErrorCode } from "./errors.ts";
import { makeDirSync } from "../core/make-dir.ts";

export interface FetchOptions {
  /** Folder for downloads (created 0700). */
  stagingDir: string;
  /** Base URL of an IPFS HTTP gateway for ipfs:// URIs (e.g. http://127.0.0.1:8080); none: skipped. */
  ipfsGateway?: string | undefined;
  /** Time allowed per URI, ms. Default 120 000. */
  timeoutMs?: number;
}

export interface Artifact {
  uris: readonly string[];
  /** Exact size in bytes, or (`exact: false`) the most the body may have. */
  size: bigint;
  /** Default true. */
  exact?: boolean;
  /** Lowercase hex sha256 (with or without 0x). */
  sha256: string;
}

/** Where a fetch came from (for logs). */
export interface Fetched {
  path: string;
  uri: string;
}

/**
 * The IPFS modules (ipfs-unixfs-importer, multiformats), imported when an ipfs:// release is first
 * fetched: a gateway that never installs one never loads them (gateway/src/infer/README.md
 * "Where the RSS goes").
 */
const loadCid = (): Promise<typeof import("./cid.ts")> => import("./cid.ts");

/** Content errors say the bytes were wrong (worth reporting over "unreachable"). */
const CONTENT: readonly UpdateErrorCode[] = ["HASH_MISMATCH", "SIZE_MISMATCH", "CID_MISMATCH"];

async function open(uri: string, o: FetchOptions, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  if (uri.startsWith("file://")) return createReadStream(fileURLToPath(uri));
  let url: string;
  if (uri.startsWith("https://")) url = uri;
  else if (uri.startsWith("ipfs://")) {
    const { parseIpfsUri } = await loadCid();
    const cid = parseIpfsUri(uri);
    if (!cid) throw new UpdateError("FETCH_FAILED", "not an ipfs://CID URI");
    if (!o.ipfsGateway)
      throw new UpdateError("FETCH_FAILED", "no IPFS gateway is configured (updates.ipfsGateway)");
    url = `${o.ipfsGateway.replace(/\/+$/, "")}/ipfs/${cid.toString()}`;
  } else throw new UpdateError("FETCH_FAILED", "unsupported URI scheme");
  // user:password@ in an IPFS gateway or release URL: sent as Basic auth, never in the URL.
  const u = new URL(url);
  const auth = takeBasicAuth(u);
  const res = await fetch(u, { signal, redirect: "follow", headers: auth ? { authorization: auth } : {} });
  if (!res.ok || !res.body) throw new UpdateError("FETCH_FAILED", `HTTP ${res.status}`);
  return Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
}

let partSeq = 0;
/** The .part files fetches of this process are writing now (never removed as stale). */
const writing = new Set<string>();

/**
 * Removes the `*.part` files in `stagingDir` that no fetch of this process is writing: what a
 * crash, a power cut or a failed removal left. Called before every fetch and by the model agent at
 * its start; a file that cannot be removed now stays for the next call.
 * @returns the names removed
 */
export function removeStaleParts(stagingDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(stagingDir);
  } catch {
    return []; // no staging folder yet: nothing left over
  }
  const removed: string[] = [];
  for (const name of names) {
    const p = join(stagingDir, name);
    if (!name.endsWith(".part") || writing.has(p)) continue;
    try {
      if (!lstatSync(p).isFile()) continue;
      rmSync(p, { force: true });
      removed.push(name);
    } catch {
      /* kept for the next call; a fetch does not fail for it */
    }
  }
  return removed;
}

async function fetchOne(uri: string, a: Artifact, o: FetchOptions, sha: string): Promise<string> {
  const part = join(o.stagingDir, `${sha}.${++partSeq}.part`); // concurrent fetches of one release
  writing.add(part);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), o.timeoutMs ?? 120_000);
  const hash = createHash("sha256");
  let n = 0n;
  try {
    const body = await open(uri, o, ac.signal);
    // Opened here, synchronously: a write stream opens its file later, so a source that fails at
    // once (a missing file, a folder) could see its .part removed before it was even created, and
    // then left behind.
    const out = createWriteStream(part, { fd: openSync(part, "wx", 0o600) });
    // pipeline() carries every stream's error to the one promise: a write error of the .part
    // file (ENOSPC, EIO) is an 'error' event that would otherwise end the process.
    await pipeline(
      body,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          n += BigInt(chunk.length);
          if (n > a.size) {
            ac.abort();
            throw new UpdateError(
              "SIZE_MISMATCH",
              `the body is longer than the release's ${a.size} bytes; cut there`,
            );
          }
          hash.update(chunk);
          yield chunk;
        }
      },
      out,
    );
    if (n !== a.size && a.exact !== false)
      throw new UpdateError("SIZE_MISMATCH", `got ${n} bytes, the release has ${a.size}`);
    const got = hash.digest("hex");
    if (got !== sha) throw new UpdateError("HASH_MISMATCH", `sha256 ${got} is not the release's ${sha}`);
    const cids = uri.startsWith("ipfs://") ? await loadCid() : undefined;
    const cid = cids?.parseIpfsUri(uri);
    if (cids && cid) {
      const actual = await cids.cidV1OfFile(part);
      if (actual !== cid.toV1().toString())
        throw new UpdateError(
          "CID_MISMATCH",
          `the gateway's bytes have CID ${actual}, not ${cid.toString()}`,
        );
    }
    const final = join(o.stagingDir, sha);
    renameSync(part, final);
    return final;
  } catch (e) {
    // No cause on a translated error: third-party messages may carry the URL; this one is redacted.
    const err =
      e instanceof UpdateError
        ? e
        : new UpdateError("FETCH_FAILED", ac.signal.aborted ? "timed out" : redactLine((e as Error).message));
    try {
      rmSync(part, { force: true });
    } catch (c) {
      throw new UpdateError(
        err.code,
        `${err.shortMessage}; the partial file ${part} cannot be removed: ${(c as Error).message}`,
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
    writing.delete(part);
  }
}

/**
 * Fetches `a` from its URIs in order; returns the staged file.
 * @throws UpdateError — the first content error (HASH_MISMATCH, SIZE_MISMATCH, CID_MISMATCH) if
 *   any URI delivered wrong bytes, else FETCH_FAILED; `details` lists every URI's reason.
 */
export async function fetchArtifact(a: Artifact, o: FetchOptions): Promise<Fetched> {
  makeDirSync(o.stagingDir, 0o700);
  removeStaleParts(o.stagingDir);
  const sha = a.sha256.replace(/^0x/, "").toLowerCase();
  const failures: UpdateError[] = [];
  const reasons: string[] = [];
  for (const uri of a.uris) {
    try {
      return { path: await fetchOne(uri, a, o, sha), uri };
    } catch (e) {
      const err = e as UpdateError;
      failures.push(err);
      reasons.push(`${redactUrl(uri)}: ${err.shortMessage}`);
    }
  }
  const worst = failures.find((f) => CONTENT.includes(f.code)) ?? failures[0];
  throw new UpdateError(
    worst?.code ?? "FETCH_FAILED",
    `no URI delivered the release's bytes (${worst?.shortMessage ?? "no URIs"})`,
    { details: reasons.join("; ") },
  );
}
