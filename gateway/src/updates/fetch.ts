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
 *
 * Every URI is bounded by `timeoutMs` and by the caller's `signal` (an agent's stop), file:// reads
 * included: a wait that Node cannot cancel (an open() or read() on a hung mount) is abandoned, not
 * awaited. Redirects are followed (at most 20, as fetch does) except from https:// to plain
 * http:// ({@link RedirectDowngradeError}) and to any scheme but http(s)://.
 */
import { createHash } from "node:crypto";
import { constants, createWriteStream, lstatSync, openSync, readdirSync, renameSync, rmSync } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { redactUrl } from "../core/errors.ts";
import { takeBasicAuth } from "../core/url-credentials.ts";
import { redactLine } from "../core/log.ts";
import {
  RedirectDowngradeError,
  RedirectInternalError,
  UpdateError,
  type UpdateErrorCode,
} from "./errors.ts";
import { isInternalUrl } from "./internal-address.ts";
import { makeDirSync } from "../core/make-dir.ts";
import { untilAborted } from "../core/abort.ts";

export interface FetchOptions {
  /** Folder for downloads (created 0700). */
  stagingDir: string;
  /** Base URL of an IPFS HTTP gateway for ipfs:// URIs (e.g. http://127.0.0.1:8080); none: skipped. */
  ipfsGateway?: string | undefined;
  /** Time allowed per URI, ms. Default 120 000. */
  timeoutMs?: number;
  /**
   * Aborts the fetch (the agent's stop): it rejects at once with an `INTERRUPTED` UpdateError,
   * its `.part` removed, and no further URI is tried.
   */
  signal?: AbortSignal | undefined;
  /**
   * Whether a URL's host is inside the gateway's networks, for the redirect rule (httpGet).
   * Default internal-address.ts `isInternalUrl`; tests, whose servers are all on loopback, pass
   * their own.
   */
  internal?: (url: URL) => Promise<boolean>;
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

/** The error of a fetch that the caller's signal aborted. */
function interrupted(): UpdateError {
  return new UpdateError("INTERRUPTED", "the download was stopped (the update agent is stopping)");
}

/** A file:// URI's bytes: a regular file only, opened without blocking on a FIFO or a device. */
async function openLocal(uri: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  // O_NONBLOCK: a FIFO nobody writes would block open() (and a libuv thread) for good.
  const h = await untilAborted(
    openFile(fileURLToPath(uri), constants.O_RDONLY | constants.O_NONBLOCK),
    signal,
    (late) => void late.close().catch(() => undefined),
  );
  try {
    const st = await untilAborted(h.stat(), signal);
    if (!st.isFile()) throw new UpdateError("FETCH_FAILED", "not a regular file");
  } catch (e) {
    void h.close().catch(() => undefined); // not awaited: on a hung mount close() may block too
    throw e;
  }
  return h.createReadStream();
}

/** WHATWG Fetch's redirect statuses and its limit of redirects followed. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;

/**
 * GET `start`, following redirects by hand (fetch's `redirect: "follow"` also follows https:// to
 * http://): a downgrade to plain http:// is refused before anything is sent over it, and so is a
 * redirect to an internal address (internal-address.ts) when `start` is not internal itself. As
 * fetch does, the Authorization header is dropped on a redirect to another origin, and a redirect
 * to a scheme other than http(s):// or to a URL with credentials fails.
 */
async function httpGet(
  url: string,
  start: URL,
  auth: string | undefined,
  signal: AbortSignal,
  internal: (url: URL) => Promise<boolean>,
): Promise<Response> {
  let u = start;
  let startInternal: boolean | undefined;
  for (let hop = 0; ; hop++) {
    const res = await fetch(u, { signal, redirect: "manual", headers: auth ? { authorization: auth } : {} });
    const location = REDIRECTS.has(res.status) ? res.headers.get("location") : null;
    if (location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    if (hop >= MAX_REDIRECTS) throw new UpdateError("FETCH_FAILED", `more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(location, u);
    } catch {
      throw new UpdateError("FETCH_FAILED", `HTTP ${res.status} to a URL that does not parse`);
    }
    if (next.protocol !== "https:" && next.protocol !== "http:")
      throw new UpdateError("FETCH_FAILED", `HTTP ${res.status} to a ${next.protocol}// URL, not followed`);
    if (u.protocol === "https:" && next.protocol === "http:")
      throw new RedirectDowngradeError(redactUrl(url), redactUrl(next.href));
    if (next.username || next.password)
      throw new UpdateError("FETCH_FAILED", `HTTP ${res.status} to a URL with credentials, not followed`);
    if (next.origin !== u.origin) auth = undefined;
    // Asked only when a redirect leads to another host or port, and the start's answer once.
    if (next.host !== u.host && (await internal(next))) {
      startInternal ??= await internal(start);
      if (!startInternal) throw new RedirectInternalError(redactUrl(url), redactUrl(next.href));
    }
    u = next;
  }
}

async function open(uri: string, o: FetchOptions, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  if (uri.startsWith("file://")) return openLocal(uri, signal);
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
  const res = await httpGet(url, u, auth, signal, o.internal ?? isInternalUrl);
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
  const timer = setTimeout(
    () => ac.abort(new UpdateError("FETCH_FAILED", "timed out")),
    o.timeoutMs ?? 120_000,
  );
  // The timer's and the caller's (a stop): either ends the attempt at once.
  const signal = o.signal ? AbortSignal.any([ac.signal, o.signal]) : ac.signal;
  const hash = createHash("sha256");
  let n = 0n;
  let body: AsyncIterable<Uint8Array> | undefined;
  let out: ReturnType<typeof createWriteStream> | undefined;
  try {
    body = await untilAborted(open(uri, o, signal), signal, (late) =>
      (late as Partial<Readable>).destroy?.(),
    );
    // Opened here, synchronously: a write stream opens its file later, so a source that fails at
    // once (a missing file, a folder) could see its .part removed before it was even created, and
    // then left behind.
    out = createWriteStream(part, { fd: openSync(part, "wx", 0o600) });
    // pipeline() carries every stream's error to the one promise: a write error of the .part
    // file (ENOSPC, EIO) is an 'error' event that would otherwise end the process. Raced with
    // the signal: a file:// read on a hung mount does not end when its stream is destroyed.
    const piped = pipeline(
      body,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          n += BigInt(chunk.length);
          if (n > a.size) {
            const cut = new UpdateError(
              "SIZE_MISMATCH",
              `the body is longer than the release's ${a.size} bytes; cut there`,
            );
            ac.abort(cut);
            throw cut;
          }
          hash.update(chunk);
          yield chunk;
        }
      },
      out,
    );
    piped.catch(() => undefined); // when abandoned by the race below
    await untilAborted(piped, signal);
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
    const err = o.signal?.aborted
      ? interrupted()
      : e instanceof UpdateError
        ? e
        : new UpdateError("FETCH_FAILED", ac.signal.aborted ? "timed out" : redactLine((e as Error).message));
    // An abandoned source or .part stream is closed now, not when its wait ends.
    (body as Partial<Readable> | undefined)?.destroy?.();
    out?.destroy();
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
 * @throws UpdateError — `INTERRUPTED` as soon as `o.signal` aborts; else the first content error
 *   (HASH_MISMATCH, SIZE_MISMATCH, CID_MISMATCH) if any URI delivered wrong bytes, else
 *   FETCH_FAILED; `details` lists every URI's reason, `cause` is the error reported (a
 *   {@link RedirectDowngradeError} for a redirect from https:// to http://).
 */
export async function fetchArtifact(a: Artifact, o: FetchOptions): Promise<Fetched> {
  makeDirSync(o.stagingDir, 0o700);
  removeStaleParts(o.stagingDir);
  const sha = a.sha256.replace(/^0x/, "").toLowerCase();
  const failures: UpdateError[] = [];
  const reasons: string[] = [];
  for (const uri of a.uris) {
    if (o.signal?.aborted) throw interrupted();
    try {
      return { path: await fetchOne(uri, a, o, sha), uri };
    } catch (e) {
      const err = e as UpdateError;
      if (err.code === "INTERRUPTED") throw err; // stopped: no further URI
      failures.push(err);
      reasons.push(`${redactUrl(uri)}: ${err.shortMessage}`);
    }
  }
  const worst = failures.find((f) => CONTENT.includes(f.code)) ?? failures[0];
  throw new UpdateError(
    worst?.code ?? "FETCH_FAILED",
    `no URI delivered the release's bytes (${worst?.shortMessage ?? "no URIs"})`,
    // The cause is this module's own error (redacted): e.g. a RedirectDowngradeError.
    { details: reasons.join("; "), ...(worst ? { cause: worst } : {}) },
  );
}
