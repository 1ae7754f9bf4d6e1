/**
 * The registry watch: keeps the gateway's view of the registry (registry-view.ts) current from the
 * registry's events, persisted in the store's registry cache so it survives restarts and serves
 * while the chain is unreachable.
 *
 * - **Schedule**: a refresh on a node-cron expression (default every 15 s), and on demand.
 * - **Range**: from the deployment file's `deployBlock` (never block 0) on the first run, then from
 *   the last *confirmed* block + 1 to the chain head, in bounded eth_getLogs windows (logs.ts).
 * - **Reorgs**: blocks deeper than `reorgDepth` below the head are confirmed: their events are
 *   folded into the persisted view and never read again. Events of the last `reorgDepth` blocks are
 *   re-read at every refresh and laid over the confirmed view, so a reorg within that depth changes
 *   the view at the next refresh. The hash of the last confirmed block is kept; if the chain later
 *   shows another hash there (a reorg deeper than `reorgDepth`), the view is rebuilt from
 *   `deployBlock` (counted in `reorgs`, logged as an error). An endpoint without that block yet
 *   (behind it) fails the refresh instead (CHAIN_BEHIND): the cached view is served meanwhile.
 * - **Persistence**: the confirmed view's changed entries and the meta record (confirmed block and
 *   hash, head, unconfirmed events, time of the refresh) are written in one synced batch. A cache
 *   written for another chain, registry or gateway is discarded at open.
 * - **Staleness**: past `maxStaleMs` without a successful refresh the watch reports `stale`
 *   (status, log line, `onStatus`); the view stays the last known one and the callers apply their
 *   policy (access/admission.ts).
 */
import cron from "node-cron";
import { systemClock, type Clock } from "../core/clock.ts";
import type { VigilError } from "../core/errors.ts";
import { ChainError } from "./errors.ts";
import type { Hex } from "../core/hex.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import type { FrameStore } from "../store/types.ts";
import type { RegistryEvent, RegistryEventSource } from "./events.ts";
import { RegistryView } from "./registry-view.ts";

export type WatchFreshness = "fresh" | "stale" | "unsynced";

export interface WatchStatus {
  /** `unsynced`: no successful refresh ever (and no cache); `stale`: the last one is older than maxStaleMs. */
  state: WatchFreshness;
  /** Highest block whose events are in the view (confirmed or not); 0 before the first refresh. */
  headBlock: number;
  /** Highest confirmed block (re-read never again). */
  confirmedBlock: number;
  /** Wall-clock ms of the last successful refresh (null: never). */
  lastRefreshMs: number | null;
  lastError: string | null;
  refreshes: number;
  failures: number;
  /** Reorgs deeper than `reorgDepth` (the view was rebuilt). */
  reorgs: number;
}

export interface RegistryWatchOptions {
  source: RegistryEventSource;
  /** The store's registry cache. */
  cache: Pick<FrameStore, "loadRegistry" | "saveRegistry">;
  gatewayId: Hex;
  /** The deployment's chain id and registry: the cache is discarded when they differ. */
  chainId: string;
  registry: string;
  /** First block to read: the registry's deployment block. */
  deployBlock: number;
  /** Blocks below the head re-read at every refresh. Default 12. */
  reorgDepth?: number;
  /** node-cron expression with seconds. Default every 15 s (`*\/15 * * * * *`). */
  schedule?: string;
  /** Without a successful refresh for longer than this, the view is stale. Default 600 000 ms. */
  maxStaleMs?: number;
  clock?: Clock;
  log?: Logger;
  /** After every successful refresh, with the current view (`changed`: it differs from the previous one). */
  onRefresh?: (view: RegistryView, changed: boolean) => void;
  /** When the freshness state changes. */
  onStatus?: (status: WatchStatus) => void;
  /** Injected scheduler (tests). Default node-cron. */
  scheduler?: (expr: string, fn: () => void) => { stop(): void | Promise<void> };
}

interface Meta {
  v: 1;
  chainId: string;
  registry: string;
  gatewayId: string;
  confirmed: number;
  confirmedHash: string | null;
  head: number;
  tentative: RegistryEvent[];
  refreshedAtMs: number | null;
}

const DEFAULT_SCHEDULE = "*/15 * * * * *";

/** Largest gap between two consecutive runs of a node-cron expression, ms (over its next 20 runs). */
export function cronPeriodMs(expr: string, from = new Date()): number {
  const task = cron.createTask(expr, () => undefined);
  try {
    const runs = task.getNextRuns(20).map((d) => d.getTime());
    let gap = 0;
    let prev = from.getTime();
    for (const t of runs) {
      gap = Math.max(gap, t - prev);
      prev = t;
    }
    return gap;
  } finally {
    void task.destroy();
  }
}

export class RegistryWatch {
  readonly #o: RegistryWatchOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #depth: number;
  readonly #maxStaleMs: number;
  #confirmedView: RegistryView;
  #view: RegistryView;
  /** Highest confirmed block; deployBlock - 1 before anything was read. */
  #confirmed: number;
  #confirmedHash: string | null = null;
  #head = 0;
  #tentative: RegistryEvent[] = [];
  #signature = "";
  #lastRefreshMs: number | null = null;
  #lastError: VigilError | Error | null = null;
  #refreshes = 0;
  #failures = 0;
  #reorgs = 0;
  #state: WatchFreshness = "unsynced";
  #task: { stop(): void | Promise<void> } | undefined;
  #refreshing: Promise<boolean> | undefined;

  constructor(o: RegistryWatchOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.log ?? silentLogger;
    this.#depth = o.reorgDepth ?? 12;
    this.#maxStaleMs = o.maxStaleMs ?? 600_000;
    if (!Number.isInteger(this.#depth) || this.#depth < 0)
      throw new RangeError("reorgDepth must be an integer ≥ 0");
    if (!Number.isInteger(o.deployBlock) || o.deployBlock < 0)
      throw new RangeError("deployBlock must be an integer ≥ 0 (the registry's deployment block)");
    if (!cron.validate(o.schedule ?? DEFAULT_SCHEDULE))
      throw new RangeError(`invalid node-cron schedule "${o.schedule}"`);
    this.#confirmed = o.deployBlock - 1;
    this.#confirmedView = new RegistryView(o.gatewayId);
    this.#view = this.#confirmedView;
  }

  /** The current view (confirmed + unconfirmed events). Replaced, never mutated, by a refresh. */
  get view(): RegistryView {
    return this.#view;
  }

  /** Largest interval between two scheduled refreshes, ms. */
  get intervalMs(): number {
    return cronPeriodMs(this.#o.schedule ?? DEFAULT_SCHEDULE);
  }

  status(): WatchStatus {
    return {
      state: this.#state,
      headBlock: this.#head,
      confirmedBlock: Math.max(0, this.#confirmed),
      lastRefreshMs: this.#lastRefreshMs,
      lastError: this.#lastError
        ? ((this.#lastError as VigilError).shortMessage ?? this.#lastError.message)
        : null,
      refreshes: this.#refreshes,
      failures: this.#failures,
      reorgs: this.#reorgs,
    };
  }

  /** Loads the cache (the view is usable offline from here on). */
  async open(): Promise<void> {
    const st = await this.#o.cache.loadRegistry();
    const m = st.meta as Partial<Meta> | undefined;
    if (!m) return;
    if (
      m.v !== 1 ||
      m.chainId !== this.#o.chainId ||
      m.registry?.toLowerCase() !== this.#o.registry.toLowerCase() ||
      m.gatewayId?.toLowerCase() !== this.#o.gatewayId.toLowerCase()
    ) {
      this.#log.warn(
        { cachedChainId: m.chainId, cachedRegistry: m.registry },
        "registry cache was written for another chain, registry or gateway; it is rebuilt from the deployment block",
      );
      this.#rebuildNext = true;
      return;
    }
    this.#confirmedView = RegistryView.fromEntries(this.#o.gatewayId, st.entries);
    this.#confirmed = Math.max(this.#o.deployBlock - 1, m.confirmed ?? 0);
    this.#confirmedHash = m.confirmedHash ?? null;
    this.#head = m.head ?? 0;
    this.#tentative = m.tentative ?? [];
    this.#lastRefreshMs = m.refreshedAtMs ?? null;
    this.#view = this.#overlay(this.#confirmedView, this.#tentative);
    this.#signature = this.#sig();
    this.#updateState();
  }

  #rebuildNext = false;

  /** Starts the schedule. */
  start(): void {
    if (this.#task) return;
    const tick = (): void => {
      void this.refresh();
    };
    const expr = this.#o.schedule ?? DEFAULT_SCHEDULE;
    if (this.#o.scheduler) this.#task = this.#o.scheduler(expr, tick);
    else {
      const t = cron.schedule(expr, tick, { noOverlap: true });
      this.#task = { stop: () => t.destroy() };
    }
  }

  async stop(): Promise<void> {
    const t = this.#task;
    this.#task = undefined;
    await t?.stop();
    await this.#refreshing?.catch(() => undefined);
  }

  /**
   * One refresh now (concurrent calls share it). Resolves true when it succeeded; a failure is
   * recorded (status, staleness) and resolves false — it never rejects.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refresh(): Promise<boolean> {
    try {
      await this.#pass();
      this.#refreshes++;
      this.#lastError = null;
      this.#updateState();
      return true;
    } catch (e) {
      this.#failures++;
      this.#lastError = e as Error;
      // Logged at 1, 2, 4, 8, … consecutive failures so an outage cannot flood the log.
      const n = this.#failures;
      if ((n & (n - 1)) === 0)
        this.#log.warn(
          {
            code: (e as VigilError).code,
            err: (e as VigilError).shortMessage ?? (e as Error).message,
            failures: n,
          },
          "registry refresh failed; serving the cached view",
        );
      this.#updateState();
      return false;
    }
  }

  async #pass(): Promise<void> {
    const src = this.#o.source;
    const head = await src.head();
    let replace = false;
    let base = this.#confirmedView;
    let confirmed = this.#confirmed;
    let confirmedHash = this.#confirmedHash;
    if (this.#rebuildNext) {
      replace = true;
      base = new RegistryView(this.#o.gatewayId);
      confirmed = this.#o.deployBlock - 1;
      confirmedHash = null;
    } else if (confirmedHash !== null && confirmed >= this.#o.deployBlock) {
      // An endpoint behind the confirmed block (a lagging fallback after a failover) has no block
      // there yet: that is not a reorg. Rebuilding from it would forget confirmed events (a
      // revocation), so the pass fails and the cached view is served until it catches up.
      if (head.number < confirmed)
        throw new ChainError(
          "CHAIN_BEHIND",
          `the RPC endpoint is at block ${head.number}, behind block ${confirmed} the registry view already confirmed; waiting for it to catch up`,
        );
      const h = await src.blockHash(confirmed);
      if (h === undefined)
        throw new ChainError(
          "CHAIN_BEHIND",
          `the RPC endpoint does not have block ${confirmed}, which the registry view already confirmed; waiting for it to catch up`,
        );
      if (h !== confirmedHash) {
        this.#reorgs++;
        this.#log.error(
          { block: confirmed, cached: confirmedHash, chain: h ?? null, depth: this.#depth },
          "a reorg replaced a block the registry watch had confirmed (deeper than its re-read depth); rebuilding the view from the deployment block",
        );
        replace = true;
        base = new RegistryView(this.#o.gatewayId);
        confirmed = this.#o.deployBlock - 1;
        confirmedHash = null;
      }
    }
    const from = confirmed + 1;
    const to = head.number;
    const events = to >= from ? await src.events(from, to) : [];
    const newConfirmed = Math.max(confirmed, to - this.#depth);
    const settled = events.filter((e) => e.block <= newConfirmed);
    const tentative = events.filter((e) => e.block > newConfirmed);
    const next = settled.length > 0 || replace ? (replace ? base : base.clone()) : base;
    for (const e of settled) next.apply(e);
    if (newConfirmed > confirmed && newConfirmed >= this.#o.deployBlock) {
      // A node without the block it is about to confirm is behind the head it was asked up to: a
      // node that clamps eth_getLogs at its own head (anvil does, as older geth did) answered this pass's
      // logs short, with no error. Confirming would skip those blocks for good (a revocation in
      // them never seen) and leave no hash to check for a reorg.
      const h = await src.blockHash(newConfirmed);
      if (h === undefined)
        throw new ChainError(
          "CHAIN_BEHIND",
          `the RPC endpoint does not have block ${newConfirmed}, below the head (block ${to}) this pass read the registry's events up to: its events may end short; waiting for it to catch up`,
        );
      confirmedHash = h;
    }
    const nowMs = this.#clock.nowMs();
    const meta: Meta = {
      v: 1,
      chainId: this.#o.chainId,
      registry: this.#o.registry.toLowerCase(),
      gatewayId: this.#o.gatewayId.toLowerCase(),
      confirmed: newConfirmed,
      confirmedHash,
      head: Math.max(to, newConfirmed),
      tentative,
      refreshedAtMs: nowMs,
    };
    const changes = replace ? next.entries() : next === base ? [] : next.takeChanges();
    if (replace) next.takeChanges();
    await this.#o.cache.saveRegistry(changes, meta as unknown as Record<string, unknown>, replace);
    // Committed: adopt.
    this.#rebuildNext = false;
    this.#confirmedView = next;
    this.#confirmed = newConfirmed;
    this.#confirmedHash = confirmedHash;
    this.#head = meta.head;
    this.#tentative = tentative;
    this.#lastRefreshMs = nowMs;
    const view = this.#overlay(next, tentative);
    const sig = this.#sig();
    const changed = sig !== this.#signature || replace;
    this.#signature = sig;
    if (changed) this.#view = view;
    this.#o.onRefresh?.(this.#view, changed);
  }

  /** A key that changes whenever the view may have: confirmed events folded, or unconfirmed ones differ. */
  #sig(): string {
    return `${this.#confirmedView.version}@${this.#confirmed}:${this.#tentative
      .map((e) => `${e.blockHash}/${e.index}`)
      .join(",")}`;
  }

  #overlay(confirmed: RegistryView, tentative: readonly RegistryEvent[]): RegistryView {
    if (tentative.length === 0) return confirmed;
    const v = confirmed.clone();
    for (const e of tentative) v.apply(e);
    return v;
  }

  #updateState(): void {
    const last = this.#lastRefreshMs;
    const state: WatchFreshness =
      last === null ? "unsynced" : this.#clock.nowMs() - last > this.#maxStaleMs ? "stale" : "fresh";
    if (state === this.#state) return;
    const prev = this.#state;
    this.#state = state;
    if (state === "stale")
      this.#log.warn(
        { lastRefreshMs: last, maxStaleMs: this.#maxStaleMs, lastError: this.status().lastError },
        "the registry cache is stale: no successful refresh within registry.maxStaleMs; the configured stale policy applies",
      );
    else if (state === "fresh" && prev !== "unsynced")
      this.#log.info({ headBlock: this.#head }, "the registry cache is fresh again");
    this.#o.onStatus?.(this.status());
  }

  /** Re-evaluates staleness now (the schedule does it at every tick; tests with a fake clock). */
  checkStale(): WatchFreshness {
    this.#updateState();
    return this.#state;
  }
}
