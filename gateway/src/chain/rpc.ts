/**
 * JSON-RPC over HTTP with several endpoints, health checks and failover.
 *
 * Why not ethers' JsonRpcProvider here: the anchoring and verification paths need control that its
 * FetchRequest does not give — a per-request timeout (its default is 300 s), a typed error per
 * failure mode (429, timeout, malformed body) instead of a retry loop inside the library, and
 * failover between providers. The transport is ~200 lines over Node's fetch; ethers is still used
 * for ABI coding and transaction signing.
 *
 * - Endpoints are tried in order of preference: the first healthy one serves requests. A transport
 *   failure (connection refused, timeout, HTTP 429 or 5xx, a body that is not a JSON-RPC 2.0
 *   response or is larger than `maxResponseBytes`) marks the endpoint unhealthy and the request moves to the next healthy endpoint
 *   (`retries` attempts in all); one that answered 429 with Retry-After is sent nothing until
 *   then (at most {@link MAX_RETRY_AFTER_S}). A JSON-RPC error *answer* is not a transport failure: it is
 *   translated (errors.ts `translateRpcError`) and thrown as is.
 * - `checkHealth()` (also every `healthCheckIntervalMs`) probes every endpoint with `eth_chainId`
 *   and `eth_blockNumber`; an endpoint found on another chain is not used from then on (one that
 *   changes chains between two probes answers until the next); an endpoint more than
 *   `maxLagBlocks` behind the highest block another endpoint reported in the same round (a lagging
 *   replica, a frozen node) is unhealthy until it catches up; the most preferred healthy endpoint
 *   becomes current again (fail back to the primary).
 * - Credentials: `user:password@` in a URL is sent as HTTP Basic authorization (fetch refuses URLs
 *   with credentials); every URL in a message or status goes through `redactUrl`; errors never carry
 *   the raw URL or a cause that contains it.
 */
import { ChainError } from "./chain-error.ts";
import { parseRpcUrl } from "./rpc-url.ts";
import {
  ChainNetworkError,
  RpcBadResponseError,
  RpcError,
  RpcRateLimitError,
  RpcTimeoutError,
  RpcWrongChainError,
  translateRpcError,
} from "./errors.ts";
import type { Interface } from "ethers";
import { realTimers, unrefTimer, type Timers } from "../core/timers.ts";

// Parsed without ethers (rpc-url.ts) so the CLI's flag checks load no ethers; callers keep this import.
export { parseRpcUrl };

/** What callers of the chain need from a JSON-RPC connection. */
export interface RpcClient {
  /**
   * Sends one request and resolves with its `result`. Rejects with a typed ChainError:
   * ChainNetworkError (and subclasses) when no endpoint answered, or the node's error translated.
   */
  request<T = unknown>(method: string, params?: readonly unknown[]): Promise<T>;
  /** The current endpoint, redacted (for messages). */
  readonly currentUrl: string;
  close(): void;
}

export interface RpcEndpointStatus {
  /** Position in the configured list (0 = most preferred). */
  index: number;
  /** Redacted URL. */
  url: string;
  healthy: boolean;
  /** Consecutive failures. */
  failures: number;
  lastError: string | null;
  /** Round trip of the last successful health probe, ms. */
  latencyMs: number | null;
  /** Latest block the endpoint reported at its last probe. */
  blockNumber: number | null;
}

export interface RpcPoolStatus {
  /** Index of the endpoint that serves requests now. */
  current: number;
  currentUrl: string;
  /** Requests moved to another endpoint after a transport failure, since start. */
  failovers: number;
  endpoints: RpcEndpointStatus[];
}

export interface RpcPoolOptions {
  /** Endpoints in order of preference (http:// or https://). At least one. */
  urls: readonly string[];
  /** Per-request timeout, ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Largest answer body read, bytes; a larger one is a bad response (a transport failure: the
   * request moves on to another endpoint). Default 16 MiB ({@link MAX_RPC_RESPONSE_BYTES}).
   */
  maxResponseBytes?: number;
  /** Attempts per request across endpoints (transport failures only). Default 2 × endpoints, at least 3. */
  attempts?: number;
  /** Health probe period, ms; 0 = only on demand. Default 15 000. */
  healthCheckIntervalMs?: number;
  /** Refuse endpoints that serve another chain (checked at the first probe of each endpoint). */
  expectedChainId?: bigint;
  /**
   * Blocks an endpoint may be behind the highest one at a health probe before it is unhealthy
   * (only compared when two or more endpoints answer). Default 10.
   */
  maxLagBlocks?: number;
  /** ABIs for decoding revert data in error answers. */
  ifaces?: readonly Interface[];
  /** Injected fetch (tests). */
  fetch?: typeof fetch;
  /** The clock Retry-After holds are measured with, ms. Default Date.now. */
  nowMs?: () => number;
  timers?: Timers;
  /** Called when the serving endpoint changes (index, redacted URL, why). */
  onFailover?: (e: { from: number; to: number; url: string; reason: string }) => void;
}

interface Endpoint {
  index: number;
  /** URL without credentials. */
  href: string;
  /** Redacted URL for messages. */
  shown: string;
  auth: string | undefined;
  healthy: boolean;
  failures: number;
  lastError: string | null;
  /** The transport error behind `lastError`, rethrown as is (not wrapped in another). */
  lastFailure?: ChainNetworkError | undefined;
  latencyMs: number | null;
  blockNumber: number | null;
  chainChecked: boolean;
  /** The chain id the endpoint served at its last probe, when that was not the expected one. */
  wrongChain: bigint | undefined;
  /**
   * Until when (ms, `nowMs`) the endpoint asked not to be sent anything (HTTP 429 Retry-After):
   * neither requests nor probes go to it before then.
   */
  holdUntilMs?: number | undefined;
}

/** The longest Retry-After honoured, s: a provider's hour-long ask would stop anchoring for it. */
export const MAX_RETRY_AFTER_S = 300;

let nextId = 1;

export class RpcPool implements RpcClient {
  readonly #eps: Endpoint[];
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #attempts: number;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #ifaces: readonly Interface[];
  readonly #expected: bigint | undefined;
  readonly #maxLag: number;
  readonly #timers: Timers;
  readonly #onFailover: RpcPoolOptions["onFailover"];
  #current = 0;
  #failovers = 0;
  #timer: unknown;
  #closed = false;
  #probing: Promise<void> | undefined;

  constructor(o: RpcPoolOptions) {
    if (o.urls.length === 0) throw new ChainError("CHAIN_BAD_URL", "no RPC URL configured");
    this.#eps = o.urls.map((url, index) => {
      const p = parseRpcUrl(url);
      return {
        index,
        href: p.href,
        shown: p.shown,
        auth: p.auth,
        healthy: true,
        failures: 0,
        lastError: null,
        latencyMs: null,
        blockNumber: null,
        chainChecked: o.expectedChainId === undefined,
        wrongChain: undefined,
      };
    });
    this.#timeoutMs = o.timeoutMs ?? 10_000;
    this.#maxBytes = o.maxResponseBytes ?? MAX_RPC_RESPONSE_BYTES;
    this.#attempts = o.attempts ?? Math.max(3, 2 * o.urls.length);
    this.#fetch = o.fetch ?? fetch;
    this.#now = o.nowMs ?? Date.now;
    this.#ifaces = o.ifaces ?? [];
    this.#expected = o.expectedChainId;
    this.#maxLag = o.maxLagBlocks ?? 10;
    if (!Number.isInteger(this.#maxLag) || this.#maxLag < 0)
      throw new RangeError("maxLagBlocks must be an integer ≥ 0");
    this.#timers = o.timers ?? realTimers;
    this.#onFailover = o.onFailover;
    const every = o.healthCheckIntervalMs ?? 15_000;
    if (every > 0) {
      const tick = (): void => {
        if (this.#closed) return;
        void this.checkHealth().finally(() => {
          if (!this.#closed) this.#timer = unrefTimer(this.#timers.setTimeout(tick, every));
        });
      };
      this.#timer = unrefTimer(this.#timers.setTimeout(tick, every));
    }
  }

  get currentUrl(): string {
    return this.#eps[this.#current]!.shown;
  }

  status(): RpcPoolStatus {
    return {
      current: this.#current,
      currentUrl: this.currentUrl,
      failovers: this.#failovers,
      endpoints: this.#eps.map((e) => ({
        index: e.index,
        url: e.shown,
        healthy: e.healthy,
        failures: e.failures,
        lastError: e.lastError,
        latencyMs: e.latencyMs,
        blockNumber: e.blockNumber,
      })),
    };
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
  }

  /**
   * Probes every endpoint (eth_chainId, eth_blockNumber) and makes the most preferred healthy one
   * current. Endpoints on another chain than `expectedChainId` stay unhealthy.
   */
  checkHealth(): Promise<void> {
    this.#probing ??= (async () => {
      await Promise.all(this.#eps.map((e) => this.#probe(e)));
      this.#markLagging();
      const best = this.#eps.find((e) => e.healthy);
      if (best && best.index !== this.#current)
        this.#switch(
          best.index,
          best.index < this.#current
            ? "preferred endpoint is healthy again"
            : (this.#eps[this.#current]!.lastError ?? "endpoint unhealthy"),
        );
    })().finally(() => (this.#probing = undefined));
    return this.#probing;
  }

  /**
   * Marks endpoints that answered this round's probe but are more than `maxLagBlocks` behind the
   * highest of them unhealthy. A node that stopped following the chain answers every request
   * "successfully" from the past: receipts missing, registry state old — which the anchoring
   * service would otherwise take for a reorg.
   */
  #markLagging(): void {
    const answered = this.#eps.filter((e) => e.healthy && e.blockNumber !== null);
    if (answered.length < 2) return;
    const top = Math.max(...answered.map((e) => e.blockNumber!));
    for (const e of answered) {
      const behind = top - e.blockNumber!;
      if (behind <= this.#maxLag) continue;
      e.healthy = false;
      e.lastError = `${behind} blocks behind the highest endpoint (block ${top})`;
      e.lastFailure = new ChainNetworkError(e.shown, { reason: e.lastError });
    }
  }

  async #probe(e: Endpoint): Promise<void> {
    if (this.#held(e)) return; // it asked for quiet (Retry-After): stays as it is until then
    const t0 = performance.now();
    try {
      const chainId = BigInt(await this.#call<string>(e, "eth_chainId", []));
      if (this.#expected !== undefined && chainId !== this.#expected) {
        e.healthy = false;
        e.wrongChain = chainId;
        // Checked again before its next request: an endpoint repointed to another chain after an
        // earlier good probe must not keep serving (a request would go to the wrong chain).
        e.chainChecked = false;
        e.lastError = `serves chain ${chainId}, expected ${this.#expected}`;
        return;
      }
      e.wrongChain = undefined;
      e.chainChecked = true;
      e.blockNumber = Number(BigInt(await this.#call<string>(e, "eth_blockNumber", [])));
      e.latencyMs = Math.round(performance.now() - t0);
      e.healthy = true;
      e.failures = 0;
      e.lastError = null;
    } catch (err) {
      e.healthy = false;
      e.failures++;
      e.lastError = (err as ChainError).shortMessage ?? String(err);
      e.lastFailure = err instanceof ChainNetworkError ? err : undefined;
    }
  }

  #switch(to: number, reason: string): void {
    const from = this.#current;
    if (from === to) return;
    this.#current = to;
    this.#failovers++;
    this.#onFailover?.({ from, to, url: this.#eps[to]!.shown, reason });
  }

  async request<T = unknown>(method: string, params: readonly unknown[] = []): Promise<T> {
    let last: ChainError | undefined;
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      if (this.#closed) throw new ChainNetworkError(this.currentUrl, { reason: "connection closed" });
      const e = this.#eps[this.#current]!;
      // Every endpoint asked to be left alone (Retry-After): nothing is sent before its time.
      if (this.#held(e)) {
        const other = this.#eps.find((x) => x.healthy && !this.#held(x));
        if (other) {
          this.#switch(other.index, e.lastError ?? "rate limited");
          continue;
        }
        // A short hold is waited out within the request (as a timeout would be); a long one is
        // the caller's to back off from.
        const now = this.#now();
        const waitMs = Math.min(...this.#eps.map((x) => Math.max(0, (x.holdUntilMs ?? now) - now)));
        if (waitMs > this.#timeoutMs || attempt + 1 >= this.#attempts)
          throw new RpcRateLimitError(e.shown, Math.ceil(waitMs / 1000));
        await new Promise((r) => this.#timers.setTimeout(() => r(undefined), waitMs));
        continue;
      }
      try {
        if (!e.chainChecked) {
          await this.#probe(e);
          if (!e.healthy)
            throw e.wrongChain !== undefined && this.#expected !== undefined
              ? new RpcWrongChainError(e.shown, e.wrongChain, this.#expected)
              : (e.lastFailure ?? new ChainNetworkError(e.shown, { reason: e.lastError ?? "unhealthy" }));
        }
        const r = await this.#call<T>(e, method, params);
        e.failures = 0;
        e.healthy = true;
        return r;
      } catch (err) {
        if (!(err instanceof ChainNetworkError)) throw err; // the node answered: not a transport failure
        last = err;
        e.failures++;
        e.healthy = false;
        e.lastError = err.shortMessage;
        // RFC 9110 §10.2.3: the provider said how long to wait; bounded by MAX_RETRY_AFTER_S.
        if (err instanceof RpcRateLimitError && err.retryAfterS !== undefined && err.retryAfterS > 0)
          e.holdUntilMs = this.#now() + Math.min(err.retryAfterS, MAX_RETRY_AFTER_S) * 1000;
        const next = this.#nextHealthy(e.index);
        if (next !== undefined) this.#switch(next, err.shortMessage);
        else if (err instanceof RpcRateLimitError || attempt + 1 < this.#attempts) {
          // Every endpoint failed: wait a little before going round again (bounded by attempts).
          // Not unref'd: a request in progress is work, and in a one-shot CLI nothing else keeps
          // Node running, which then exits 13 ("unsettled top-level await") with no message.
          await new Promise((r) => this.#timers.setTimeout(() => r(undefined), 200 * (attempt + 1)));
          for (const x of this.#eps) if (!this.#held(x)) x.healthy = true; // give each another chance
        }
      }
    }
    throw last ?? new ChainNetworkError(this.currentUrl);
  }

  #nextHealthy(after: number): number | undefined {
    const n = this.#eps.length;
    for (let k = 1; k < n; k++) {
      const e = this.#eps[(after + k) % n]!;
      if (e.healthy && !this.#held(e)) return e.index;
    }
    return undefined;
  }

  /** The endpoint's Retry-After has not passed yet. */
  #held(e: Endpoint): boolean {
    if (e.holdUntilMs === undefined) return false;
    if (this.#now() < e.holdUntilMs) return true;
    e.holdUntilMs = undefined;
    return false;
  }

  async #call<T>(e: Endpoint, method: string, params: readonly unknown[]): Promise<T> {
    const body = JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (e.auth) headers.authorization = e.auth;
    let res: Response;
    try {
      res = await this.#fetch(e.href, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const name = (err as Error)?.name;
      if (name === "TimeoutError" || name === "AbortError")
        throw new RpcTimeoutError(e.shown, this.#timeoutMs);
      // No cause: undici's errors can carry the request URL.
      throw new ChainNetworkError(e.shown, { reason: connectReason(err) });
    }
    let text: string;
    try {
      text = await readCapped(res, this.#maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError)
        throw new RpcBadResponseError(
          e.shown,
          `HTTP ${res.status}: the answer is larger than ${this.#maxBytes} bytes (not read further)`,
        );
      const name = (err as Error)?.name;
      if (name === "TimeoutError" || name === "AbortError")
        throw new RpcTimeoutError(e.shown, this.#timeoutMs);
      throw new ChainNetworkError(e.shown, { reason: "connection dropped while reading the answer" });
    }
    if (res.status === 429) {
      const ra = Number(res.headers.get("retry-after"));
      throw new RpcRateLimitError(e.shown, Number.isFinite(ra) && ra >= 0 ? ra : undefined);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new RpcBadResponseError(
        e.shown,
        `HTTP ${res.status}: the answer is not JSON (${JSON.stringify(text.slice(0, 40))}…)`,
      );
    }
    const d = doc as { jsonrpc?: unknown; result?: unknown; error?: unknown } | null;
    if (
      !d ||
      typeof d !== "object" ||
      Array.isArray(d) ||
      d.jsonrpc !== "2.0" ||
      !("result" in d || "error" in d)
    )
      throw new RpcBadResponseError(e.shown, `HTTP ${res.status}: not a JSON-RPC 2.0 response`);
    if (d.error !== undefined && d.error !== null) {
      // A rate-limit answer becomes RpcRateLimitError, a transport failure (the provider's, not the
      // request's): request() moves on to another endpoint.
      const err = translateRpcError(method, d.error as Record<string, unknown>, e.shown, this.#ifaces);
      // An HTTP 5xx whose body is a plain JSON-RPC error (-32603 "internal error") is the
      // provider failing, not an answer about the request (a revert, a nonce, funds keep their
      // type): a transport failure too, so the request moves on (README: 429 or 5xx).
      if (res.status >= 500 && err instanceof RpcError)
        throw new RpcBadResponseError(e.shown, `HTTP ${res.status}: ${err.shortMessage}`);
      throw err;
    }
    if (res.status >= 500) throw new RpcBadResponseError(e.shown, `HTTP ${res.status}`);
    return d.result as T;
  }
}

/**
 * The largest JSON-RPC answer read by default: 16 MiB. The gateway's answers are small (a block
 * header, a receipt, eth_getLogs over at most `logBlockRange` blocks of registry events); unbounded,
 * an endpoint sending 100 MB answers took the gateway from 194 to 704 MB RSS (RPC audit D5).
 */
export const MAX_RPC_RESPONSE_BYTES = 16 * 1024 * 1024;

class TooLargeError extends Error {}

/** The body as UTF-8 text, read up to `max` bytes; more (or a Content-Length above it) throws TooLargeError. */
async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLargeError();
  }
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => undefined);
      throw new TooLargeError();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, n).toString("utf8");
}

function connectReason(err: unknown): string {
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === "string" ? code : "connection failed";
}
