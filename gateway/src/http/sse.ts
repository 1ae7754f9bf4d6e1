/**
 * Live page updates over server-sent events (WHATWG HTML, "Server-sent events"): `GET /events`
 * answers `text/event-stream` with
 *   - `init`  on connect: everything the page shows (PageModel.init),
 *   - `delta` every `deltaMs` when something changed: device health coalesced per device (each
 *             device once, with the sparkline points it gained) and alert transitions,
 *   - `stats` every `statsMs`: counters, rates, devices' ingest figures, batches, models.
 *
 * Never blocks the gateway: each message is serialised once and written to every client; a
 * client whose socket already buffers more than `maxBufferedBytes` is skipped (counted) until
 * its socket drains, then sent a fresh `init`, so a slow or stalled page costs at most one
 * buffer and never queues history. A page still stalled after `maxStallMs` is disconnected
 * (counted), so stalled connections cannot hold the `maxClients` places (others get 503).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { realTimers, unrefTimer, type Timers } from "../core/timers.ts";
import type { Logger } from "../core/log.ts";
import { silentLogger } from "../core/log.ts";
import type { LiveFeed } from "./live.ts";
import type { PageModel } from "./page-model.ts";

export interface SseOptions {
  /** Default 16. */
  maxClients: number;
  /** Per-client socket buffer above which updates are skipped. Default 1 MiB. */
  maxBufferedBytes: number;
  /** Health/alert update period, ms. Default 250. */
  deltaMs: number;
  /** Counter update period, ms (also the rate sampling period). Default 1000. */
  statsMs: number;
  /** A page whose socket has not drained for this long is disconnected. Default 30 000. */
  maxStallMs: number;
}

export const SSE_DEFAULTS: SseOptions = {
  maxClients: 16,
  maxBufferedBytes: 1 << 20,
  deltaMs: 250,
  statsMs: 1000,
  maxStallMs: 30_000,
};

interface Client {
  res: ServerResponse;
  /** Waiting for its socket to drain; gets an `init` then. */
  behind: boolean;
  /** Date.now() when its socket stopped draining (undefined: not stalled). */
  stalledSinceMs?: number | undefined;
}

/** One SSE message: event name and a JSON body on one `data:` line (JSON has no raw newlines). */
export function sseMessage(event: string, body: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(body)}\n\n`;
}

export class SseHub {
  readonly #clients = new Set<Client>();
  readonly #model: PageModel;
  readonly #feed: LiveFeed;
  readonly #o: SseOptions;
  readonly #timers: Timers;
  readonly #log: Logger;
  #deltaTimer: unknown;
  #statsTimer: unknown;
  #statsBusy = false;
  /** Updates not sent to a slow client. */
  skipped = 0;
  /** Pages disconnected after `maxStallMs` without draining. */
  evicted = 0;

  constructor(
    model: PageModel,
    feed: LiveFeed,
    o: Partial<SseOptions> = {},
    timers: Timers = realTimers,
    log: Logger = silentLogger,
  ) {
    this.#model = model;
    this.#feed = feed;
    this.#o = { ...SSE_DEFAULTS, ...o };
    this.#timers = timers;
    this.#log = log;
  }

  get clients(): number {
    return this.#clients.size;
  }

  start(): void {
    this.#model.sample();
    const delta = (): void => {
      this.#deltaTimer = unrefTimer(this.#timers.setTimeout(delta, this.#o.deltaMs));
      if (!this.#feed.changed) return;
      const d = this.#feed.drain(); // drained also without clients, so a new page starts clean
      if (this.#clients.size > 0) this.#broadcast(sseMessage("delta", d));
    };
    const stats = (): void => {
      this.#statsTimer = unrefTimer(this.#timers.setTimeout(stats, this.#o.statsMs));
      this.#model.sample();
      if (this.#clients.size === 0 || this.#statsBusy) return;
      this.#statsBusy = true;
      this.#model
        .stats()
        .then((s) => this.#broadcast(sseMessage("stats", s)))
        .catch((e: unknown) => this.#log.warn({ err: (e as Error).message }, "page stats failed"))
        .finally(() => (this.#statsBusy = false));
    };
    this.#deltaTimer = unrefTimer(this.#timers.setTimeout(delta, this.#o.deltaMs));
    this.#statsTimer = unrefTimer(this.#timers.setTimeout(stats, this.#o.statsMs));
  }

  /** Serves `GET /events`; returns the status code sent. */
  attach(req: IncomingMessage, res: ServerResponse): number {
    if (this.#clients.size >= this.#o.maxClients) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "10" });
      res.end(`at most ${this.#o.maxClients} live pages at once\n`);
      return 503;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    // Reconnect after 2 s if the connection drops (the browser's EventSource does it).
    res.write("retry: 2000\n\n");
    const c: Client = { res, behind: true };
    this.#clients.add(c);
    const gone = (): void => {
      this.#clients.delete(c);
    };
    req.once("close", gone);
    res.once("close", gone);
    res.on("error", gone);
    this.#sendInit(c);
    return 200;
  }

  #sendInit(c: Client): void {
    this.#model
      .init()
      .then((init) => {
        if (!this.#clients.has(c)) return;
        c.behind = false;
        this.#write(c, sseMessage("init", init));
      })
      .catch((e: unknown) => {
        this.#log.warn({ err: (e as Error).message }, "page snapshot failed");
        c.res.destroy();
      });
  }

  #broadcast(msg: string): void {
    for (const c of this.#clients) this.#write(c, msg);
  }

  #write(c: Client, msg: string): void {
    if (c.behind) {
      // Slow (its buffer was full) rather than new: a new page's pending init holds what it missed.
      if (c.stalledSinceMs !== undefined) this.skipped++;
      if (c.stalledSinceMs !== undefined && Date.now() - c.stalledSinceMs > this.#o.maxStallMs) {
        this.evicted++;
        this.#clients.delete(c);
        c.res.destroy();
      }
      return;
    }
    if (c.res.writableLength > this.#o.maxBufferedBytes) {
      this.skipped++;
      c.behind = true;
      c.stalledSinceMs = Date.now();
      c.res.once("drain", () => {
        c.stalledSinceMs = undefined;
        this.#sendInit(c);
      });
      return;
    }
    c.res.write(msg);
  }

  /** Ends every stream and stops the timers. */
  stop(): void {
    this.#timers.clearTimeout(this.#deltaTimer);
    this.#timers.clearTimeout(this.#statsTimer);
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
  }
}
