/**
 * What the live page shows, as JSON: built from the stages' counters (MetricsSource) and the
 * live feed (LiveFeed) when a page connects (`init`) and once a second while one is connected
 * (`stats`); `/api/summary` serves the same `stats` object. Ingest rates for the page's chart
 * are sampled once a second while the server runs (a 5-minute history of a few numbers).
 */
import { deviceIdHex } from "../protocol/frame.ts";
import { round4, SPARK_POINTS, type AlertView, type LiveFeed } from "./live.ts";
import { readiness, type Readiness } from "./readiness.ts";
import type { AccessStatusView, LiveWindowView, MetricsSource } from "./source.ts";

/** Seconds of rate history kept for the page's chart. */
export const HISTORY_POINTS = 300;
/** Most recent batches shown. */
export const RECENT_BATCHES = 10;

export interface BatchView {
  seq: number;
  leaves: number;
  sealedMs: number;
  /** null until anchored (or when the anchor's transaction could not be looked up). */
  tx: string | null;
  block: number | null;
  anchored: boolean;
}

export interface DeviceView {
  d: string;
  profile: string | null;
  fw: string | null;
  /** Frames/s accepted over the last sample intervals (smoothed). */
  rate: number;
  accepted: number;
  rejected: number;
  gaps: number;
  /** ERROR frames the device sent (all codes). */
  errors: number;
  /** Gateway time of the last DATA frame, ms since the epoch (0: none yet). */
  lastMs: number;
  /**
   * The live model's data-quality view of the device (null without one): channels in sensor
   * fault, windows withheld, and how the gateway met the machine (commissioning mode).
   */
  quality: { faults: number; withheld: number; mode: string } | null;
}

export interface ModelView {
  name: string;
  version: string;
  sha256: string;
  role: string;
  profiles: string[];
  outputs: Array<{ name: string; unit: string; min?: number; max?: number }>;
  windowsRun: number;
  usPerWindow: number;
  shadow: { compared: number; meanAbsDiff: number; maxAbsDiff: number } | null;
}

export interface PageStats {
  /** Server time, ms. */
  t: number;
  gateway: { id: string; name: string; site: string };
  readiness: Readiness;
  totals: {
    accepted: number;
    duplicates: number;
    rejected: number;
    deviceErrors: number;
    windowsRun: number;
    windowsSkipped: number;
    alertsRaised: number;
    alertsCleared: number;
    alertsActive: number;
    batchesSealed: number;
    batchesAnchored: number;
    sealerBacklog: number;
  };
  /** Per second over the last sample interval. */
  rates: { accepted: number; rejected: number; duplicates: number; windows: number };
  /** Rejections by reason: total and per second over the last sample interval. */
  rejections: Array<{ reason: string; total: number; rate: number }>;
  devices: DeviceView[];
  models: ModelView[];
  batches: BatchView[];
  /** Whether frames are sealed into signed batches: false without chain.deployment or with attest.enabled false. */
  sealing: boolean;
  anchor: { enabled: boolean; backlog: number; failures: number; lastError: string | null };
  store: { state: string; liveBytes: number; pending: number };
  inference: { frameToResultP50Ms: number; frameToResultP99Ms: number; runP99Ms: number } | null;
  /** The registry watch's copy; null without the watch or before its first refresh. */
  registry: { cacheAgeSeconds: number; block?: number } | null;
  /**
   * The gateway's standing in the registry, whether it seals, the watch's freshness; null without
   * the watch. Always sent; optional for readers of an older gateway's summary (`vigil status`).
   */
  access?: AccessStatusView | null;
}

export interface PageInit extends PageStats {
  /** Rate history, oldest first: time (s) and per-second rates. */
  history: { t: number[]; accepted: number[]; rejected: number[]; duplicates: number[]; windows: number[] };
  /** Every device's latest health and sparkline. */
  health: Array<{
    d: string;
    profile: string;
    model: string;
    t: number;
    outputs: Array<[string, number | null]>;
    a: number;
    p: Array<number | null>;
  }>;
  alerts: { active: AlertView[]; recent: AlertView[] };
  sparkPoints: number;
}

interface Sample {
  t: number;
  accepted: number;
  rejected: number;
  duplicates: number;
  windows: number;
  byReason: Record<string, number>;
}

export class PageModel {
  readonly #s: MetricsSource;
  readonly #feed: LiveFeed;
  readonly #now: () => number;
  readonly #batches = new Map<number, BatchView>();
  #prev: Sample | undefined;
  #rates: PageStats["rates"] = { accepted: 0, rejected: 0, duplicates: 0, windows: 0 };
  #reasonRates: Record<string, number> = {};
  /** Per device: accepted count at the last sample and the smoothed accepted rate. */
  readonly #devPrev = new Map<number, number>();
  readonly #devRate = new Map<number, number>();
  readonly #hist: PageInit["history"] = { t: [], accepted: [], rejected: [], duplicates: [], windows: [] };

  constructor(source: MetricsSource, feed: LiveFeed, now: () => number = Date.now) {
    this.#s = source;
    this.#feed = feed;
    this.#now = now;
  }

  #read(): Sample {
    const c = this.#s.ingest.counters;
    return {
      t: this.#now(),
      accepted: c.accepted,
      rejected: c.totalRejected,
      duplicates: c.duplicates,
      windows: this.#s.loop?.counters.windowsRun ?? 0,
      byReason: { ...c.rejected },
    };
  }

  /** Takes a rate sample (call about once a second). */
  sample(): void {
    const cur = this.#read();
    const prev = this.#prev;
    this.#prev = cur;
    if (!prev) return;
    const dt = (cur.t - prev.t) / 1000;
    if (dt <= 0) return;
    const r = (a: number, b: number) => Math.round(((a - b) / dt) * 10) / 10;
    this.#rates = {
      accepted: r(cur.accepted, prev.accepted),
      rejected: r(cur.rejected, prev.rejected),
      duplicates: r(cur.duplicates, prev.duplicates),
      windows: r(cur.windows, prev.windows),
    };
    this.#reasonRates = {};
    for (const [k, v] of Object.entries(cur.byReason)) this.#reasonRates[k] = r(v, prev.byReason[k] ?? 0);
    // Per-device rates from accepted counts (ingest's own per-frame estimate averages 1/Δt,
    // which bursts of frames arriving together inflate).
    for (const d of this.#s.ingest.counters.devices.values()) {
      const n = d.seq.accepted;
      const was = this.#devPrev.get(d.id);
      this.#devPrev.set(d.id, n);
      if (was === undefined) continue;
      const rate = (n - was) / dt;
      const old = this.#devRate.get(d.id);
      this.#devRate.set(d.id, old === undefined ? rate : 0.5 * old + 0.5 * rate);
    }
    const h = this.#hist;
    h.t.push(Math.round(cur.t / 1000));
    h.accepted.push(this.#rates.accepted);
    h.rejected.push(this.#rates.rejected);
    h.duplicates.push(this.#rates.duplicates);
    h.windows.push(this.#rates.windows);
    if (h.t.length > HISTORY_POINTS) for (const a of Object.values(h)) a.shift();
  }

  /** The latest batches with their anchors; reads the store only for what changed. */
  async #recentBatches(lastSeq: number, anchoredThrough: number): Promise<BatchView[]> {
    const out: BatchView[] = [];
    for (let seq = lastSeq; seq >= 1 && seq > lastSeq - RECENT_BATCHES; seq--) {
      let b = this.#batches.get(seq);
      if (!b) {
        const sb = await this.#s.store.getBatch(seq).catch(() => undefined);
        if (!sb) continue;
        b = {
          seq,
          leaves: sb.header.leafCount,
          sealedMs: Math.round(sb.sealedAtUs / 1000),
          tx: null,
          block: null,
          anchored: false,
        };
        this.#batches.set(seq, b);
      }
      if (!b.anchored && seq <= anchoredThrough) {
        const a = await this.#s.store.getAnchor(seq).catch(() => undefined);
        if (a) Object.assign(b, { anchored: true, tx: a.txHash, block: a.blockNumber });
      }
      out.push(b);
    }
    for (const seq of this.#batches.keys()) if (seq <= lastSeq - RECENT_BATCHES) this.#batches.delete(seq);
    return out;
  }

  /** The once-a-second view (also `/api/summary`). */
  async stats(): Promise<PageStats> {
    const s = this.#s;
    const c = s.ingest.counters;
    const st = s.store.stats();
    const inf = s.loop?.counters;
    const al = this.#feed;
    let raised = 0;
    let cleared = 0;
    for (const [k, n] of al.alertCounts) {
      if (k.startsWith("raised ")) raised += n;
      else cleared += n;
    }
    const devices: DeviceView[] = [];
    for (const d of c.devices.values()) {
      let errors = 0;
      for (const n of d.errors.values()) errors += n;
      devices.push({
        d: deviceIdHex(d.id),
        profile: d.profile ?? null,
        fw: d.firmware ?? null,
        rate: Math.round((this.#devRate.get(d.id) ?? 0) * 10) / 10,
        accepted: d.seq.accepted,
        rejected: d.rejected,
        gaps: d.seq.gaps,
        errors,
        lastMs: Math.round(d.lastFrameUs / 1000),
        quality: qualityOf(s.loop?.liveWindow?.(d.id)),
      });
    }
    const a = s.anchor?.status();
    const reg = s.registry?.();
    const acc = s.access?.();
    return {
      t: this.#now(),
      gateway: { id: s.gatewayId, name: s.config.attest.gatewayName, site: s.config.site },
      readiness: readiness(s),
      totals: {
        accepted: c.accepted,
        duplicates: c.duplicates,
        rejected: c.totalRejected,
        deviceErrors: c.deviceErrors,
        windowsRun: inf?.windowsRun ?? 0,
        windowsSkipped: (inf?.skippedWindows ?? 0) + (inf?.failedWindows ?? 0),
        alertsRaised: raised,
        alertsCleared: cleared,
        alertsActive: al.active.size,
        batchesSealed: st.lastBatchSeq,
        batchesAnchored: st.anchoredThrough,
        sealerBacklog: s.sealer?.backlog() ?? 0,
      },
      rates: this.#rates,
      rejections: Object.entries(c.rejected)
        .map(([reason, total]) => ({ reason, total, rate: this.#reasonRates[reason] ?? 0 }))
        .sort((x, y) => y.total - x.total),
      devices,
      models: (s.loop?.lanes() ?? []).map((l) => ({
        name: l.model.manifest.name,
        version: l.model.manifest.version,
        sha256: l.model.sha256,
        role: l.role,
        profiles: l.model.manifest.devices.profiles,
        outputs: l.model.manifest.outputs.map((o) => ({
          name: o.name,
          unit: o.unit,
          ...(o.min !== undefined ? { min: o.min } : {}),
          ...(o.max !== undefined ? { max: o.max } : {}),
        })),
        windowsRun: l.windowsRun,
        usPerWindow: Math.round(l.usPerWindow * 10) / 10,
        shadow: l.shadow
          ? {
              compared: l.shadow.compared,
              meanAbsDiff: l.shadow.meanAbsDiff,
              maxAbsDiff: l.shadow.maxAbsDiff,
            }
          : null,
      })),
      batches: await this.#recentBatches(st.lastBatchSeq, st.anchoredThrough),
      sealing: s.sealer !== undefined,
      anchor: {
        enabled: !!s.anchor,
        backlog: st.lastBatchSeq - st.anchoredThrough,
        failures: a?.failures ?? 0,
        lastError: a?.lastError?.message ?? null,
      },
      store: { state: st.state, liveBytes: st.liveBytes, pending: st.pending },
      inference: inf
        ? {
            frameToResultP50Ms: inf.frameToResult.quantile(0.5) / 1000,
            frameToResultP99Ms: inf.frameToResult.quantile(0.99) / 1000,
            runP99Ms: inf.runLatency.quantile(0.99) / 1000,
          }
        : null,
      registry: reg ? { ...reg } : null,
      access: acc ? { standing: acc.standing, sealing: acc.sealing, registry: acc.registry } : null,
    };
  }

  /** Everything a page needs when it connects. */
  async init(): Promise<PageInit> {
    // The stats first: the rest is read after the await, so the deltas a new page skips while it
    // waits for its init (SseHub) are in it.
    const stats = await this.stats();
    const health: PageInit["health"] = [];
    for (const [id, h] of this.#feed.devices)
      health.push({
        d: deviceIdHex(id),
        profile: h.profile,
        model: `${h.model.name}@${h.model.version}`,
        t: Math.round(h.atUs / 1000),
        outputs: h.outputs.map(([n, v]) => [n, round4(v)]),
        a: h.active,
        p: h.last().map(round4),
      });
    const h = this.#hist;
    return {
      ...stats,
      history: {
        t: [...h.t],
        accepted: [...h.accepted],
        rejected: [...h.rejected],
        duplicates: [...h.duplicates],
        windows: [...h.windows],
      },
      health,
      alerts: { active: [...this.#feed.active.values()], recent: [...this.#feed.recent] },
      sparkPoints: SPARK_POINTS,
    };
  }
}

function qualityOf(w: LiveWindowView | undefined): DeviceView["quality"] {
  return w ? { faults: w.qualityState.faults, withheld: w.withheld, mode: w.commissioning.mode } : null;
}
