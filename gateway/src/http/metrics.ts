/**
 * `/metrics`: the gateway's counters in the Prometheus text format (exposition format 0.0.4),
 * with prom-client's registry, serialiser and process metrics. Nothing is counted twice and
 * nothing runs on the hot path: every metric family is collected when Prometheus scrapes, by a
 * callback that copies the stages' own counters (ingest, store, inference, alerts, sealer,
 * anchor). These are "const metrics" in the sense of the Go and Python clients (Go
 * `MustNewConstMetric`, Python `CounterMetricFamily`): values mirrored from counters kept
 * elsewhere, so they are families with a `get()`, not prom-client Counters (whose `inc()` is
 * for counting in place, and whose unlabelled metrics cannot be absent). Names follow the Prometheus
 * conventions (https://prometheus.io/docs/practices/naming/): the `vigil_` prefix, base units
 * (`_seconds`, `_bytes`), `_total` on counters, `_info` gauges of value 1 for labels.
 *
 * The metric table is in README.md (this folder); a test pins names, types and labels.
 */
import { statfs } from "node:fs/promises";
import { Registry, collectDefaultMetrics, type Metric } from "prom-client";
import type { LatencyHistogram } from "../core/histogram.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import { QUALITY_REASONS, WINDOW_VERDICTS } from "../infer/features/quality.ts";
import type { LiveFeed } from "./live.ts";
import { readiness } from "./readiness.ts";
import {
  GATEWAY_STANDINGS,
  REGISTRY_STATES,
  type MetricsSource,
  type UpdateCountersView,
  type UpdatesStatusView,
} from "./source.ts";

/** ERROR frame codes (hardware/PROTOCOL.md, ERROR) as label values. */
export const DEVICE_ERROR_CODES: Readonly<Record<number, string>> = {
  1: "sensor_fault",
  2: "buffer_overflow",
  3: "protocol_error",
  4: "other",
};

export function deviceErrorCodeLabel(code: number): string {
  return DEVICE_ERROR_CODES[code] ?? `code_${code}`;
}

/**
 * Histogram bucket bounds, µs: every power of two from 16 µs to 2^24 µs (16.8 s). They are
 * bucket bounds of infer/histogram.ts (8 buckets per power of two), so the counts below are
 * exact, not interpolated.
 */
export const LATENCY_BOUNDS_US: readonly number[] = Array.from({ length: 21 }, (_, i) => 2 ** (i + 4));

/**
 * Observations ≤ `leUs` in a LatencyHistogram, from its public `quantile()`: the largest rank r
 * whose quantile is ≤ leUs (binary search; quantile is monotonic in rank). Exact when leUs is
 * one of the histogram's bucket bounds (any power of two is).
 */
export function countAtOrBelow(h: Pick<LatencyHistogram, "count" | "quantile">, leUs: number): number {
  let lo = 0;
  let hi = h.count;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    // q·count = mid − ½, so quantile() looks at rank ceil(mid − ½) = mid.
    if (h.quantile((mid - 0.5) / h.count) <= leUs) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * A Prometheus histogram read from an infer/ LatencyHistogram (µs) at scrape time. prom-client's
 * own Histogram can only be fed observations one by one, which would put a call on the
 * inference hot path; this implements the registry's metric shape (`get()`) instead.
 */
class LatencyHistogramMetric {
  readonly type = "histogram";
  readonly aggregator = "sum";
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => LatencyHistogram | undefined,
  ) {}

  get(): { name: string; help: string; type: "histogram"; aggregator: "sum"; values: unknown[] } {
    const h = this.read();
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    const count = h?.count ?? 0;
    for (const le of LATENCY_BOUNDS_US)
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: le / 1e6 },
        value: h && count ? countAtOrBelow(h, le) : 0,
      });
    values.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf" }, value: count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: (h?.sumUs ?? 0) / 1e6 });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: count });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

type Labels = Record<string, string | number>;
type Emit = (labels: Labels, value: number) => void;

/**
 * One metric family read at scrape time: `fill` emits (labels, value) pairs; a family that
 * emits nothing is exposed with its HELP and TYPE lines only (the value is unknown, not 0).
 */
class SnapshotFamily {
  readonly aggregator = "sum";
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
    readonly labelNames: readonly string[],
    private readonly fill: (emit: Emit) => void,
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new TypeError(`invalid metric name ${name}`);
    if (type === "counter" && !name.endsWith("_total"))
      throw new TypeError(`counter ${name} must end in _total`);
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: unknown[] } {
    const values: Array<{ labels: Labels; value: number }> = [];
    this.fill((labels, value) => values.push({ labels, value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/** Reasons of `vigil_anchor_stalled` (anchor/service.ts AnchorStall). */
const ANCHOR_STALL_REASONS = ["fee-cap", "no-blocks"] as const;
/**
 * Reasons of `vigil_anchor_paused` (anchor/service.ts PAUSE_REASONS, which a test holds equal: the
 * endpoint reads the anchor service through its status view only, as for the stall reasons).
 */
export const ANCHOR_PAUSE_REASONS = [
  "fee-cap",
  "spend-cap",
  "gateway-inactive",
  "signer-mismatch",
  "insufficient-funds",
] as const;

/** A figure the anchor service may report as a bigint (gas, wei). */
/** A counter value from a stage: a number, a bigint, or a decimal string (wei amounts). */
function num(v: number | bigint | string): number {
  return typeof v === "number" ? v : Number(v);
}

let processRegistry: Registry | undefined;

/**
 * Node.js and process metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag, GC,
 * handles), registered once per process: their collectors (an event-loop delay monitor and a
 * GC observer) are process-wide and must not be created once per server.
 */
/**
 * Fills a `reason`-labelled family from counts indexed like `names`, every name but the first
 * (`ok`, never a reason); absent counts read 0.
 */
function perReason(
  names: readonly string[],
  counts: () => readonly number[] | undefined,
): (set: (labels: Record<"reason", string>, v: number) => void) => void {
  return (set) => {
    const c = counts();
    for (let i = 1; i < names.length; i++) set({ reason: names[i]! }, c?.[i] ?? 0);
  };
}

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges named like counters (`promtool check metrics`: non-counter metrics should not
    // have "_total" suffix); their by-type twins (nodejs_active_handles, …) remain and sum to them.
    for (const n of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ])
      processRegistry.removeSingleMetric(n);
  }
  return processRegistry;
}

/** HTTP server figures that appear in the exposition. */
export interface HttpStats {
  sseClients: number;
  /** Page updates not sent to a slow client (it gets a fresh snapshot when it catches up). */
  sseSkipped: number;
  /** Pages disconnected because their connection did not drain for `maxStallMs`. */
  sseEvicted: number;
  /** Requests by path and status code. */
  requests: Map<string, number>;
  /** Connections closed at accept because maxConnections were open. */
  connectionsDropped: number;
  /** Requests Node's HTTP parser refused (malformed, headers too large, too slow), by status answered. */
  clientErrors: Map<string, number>;
}

export interface MetricsOptions {
  source: MetricsSource;
  feed: LiveFeed;
  http: () => HttpStats;
  /** Gateway software version (`vigil_build_info`). */
  version: string;
  /** Wall clock, µs (anchor lag). Default Date.now. */
  nowUs?: () => number;
}

interface Scrape {
  disk: { free: number; size: number } | undefined;
  /** Oldest unanchored batch's seal time, µs. */
  oldestUnanchoredUs: number | undefined;
  /** Sealed batches wait for anchoring (the oldest one's time may still be unknown: unreadable). */
  outboxWaiting: boolean;
  lastAnchorUs: number | undefined;
  /** The update agents' status, read once per scrape (it copies the device list). */
  updates: UpdatesStatusView | undefined;
}

/**
 * The gateway's Prometheus registry. `render()` refreshes what needs I/O (free disk space, the
 * oldest unanchored batch) once, then lets every metric copy its counters.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #all: Registry;
  readonly #o: MetricsOptions;
  readonly #nowUs: () => number;
  #scrape: Scrape = {
    disk: undefined,
    oldestUnanchoredUs: undefined,
    outboxWaiting: false,
    lastAnchorUs: undefined,
    updates: undefined,
  };
  /** Seal time of batch `seq` (immutable once sealed), so a backlog is read from the store once. */
  #sealedAt: { seq: number; us: number } | undefined;
  #anchoredAt: { seq: number; us: number } | undefined;

  constructor(o: MetricsOptions) {
    this.#o = o;
    this.#nowUs = o.nowUs ?? (() => Date.now() * 1000);
    this.#define();
    this.#all = Registry.merge([processMetrics(), this.registry]);
  }

  /** Prometheus text format 0.0.4 content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition, read now. */
  async render(): Promise<string> {
    await this.#refresh();
    return this.#all.metrics();
  }

  async #refresh(): Promise<void> {
    const s = this.#o.source;
    const st = s.store.stats();
    let disk: Scrape["disk"];
    try {
      const f = await statfs(s.config.dataDir);
      disk = { free: f.bavail * f.bsize, size: f.blocks * f.bsize };
    } catch {
      disk = undefined; // no data dir (tests with a memory store): the gauges are left out
    }
    let oldest: number | undefined;
    const next = st.anchoredThrough + 1;
    if (s.anchor && st.lastBatchSeq >= next) {
      if (this.#sealedAt?.seq !== next) {
        const b = await s.store.getBatch(next).catch(() => undefined);
        this.#sealedAt = b ? { seq: next, us: b.sealedAtUs } : undefined;
      }
      oldest = this.#sealedAt?.us;
    }
    let lastAnchor: number | undefined;
    if (st.anchoredThrough > 0) {
      if (this.#anchoredAt?.seq !== st.anchoredThrough) {
        const a = await s.store.getAnchor(st.anchoredThrough).catch(() => undefined);
        this.#anchoredAt = a ? { seq: st.anchoredThrough, us: a.anchoredAtUs } : undefined;
      }
      lastAnchor = this.#anchoredAt?.us;
    }
    this.#scrape = {
      disk,
      oldestUnanchoredUs: oldest,
      outboxWaiting: !!s.anchor && st.lastBatchSeq >= next,
      lastAnchorUs: lastAnchor,
      updates: s.updates?.status(),
    };
  }

  #define(): void {
    const r = this.registry;
    const o = this.#o;
    const src = o.source;
    const family =
      (type: "counter" | "gauge") =>
      <L extends string>(
        name: string,
        help: string,
        labelNames: readonly L[],
        fill: (set: (labels: Record<L, string | number>, v: number) => void) => void,
      ): void =>
        r.registerMetric(
          new SnapshotFamily(name, help, type, labelNames, fill as (e: Emit) => void) as unknown as Metric,
        );
    const counter = family("counter");
    const gauge = family("gauge");
    /** A LatencyHistogram (µs) as a Prometheus histogram; `read` undefined: empty. */
    const histogram = (name: string, help: string, read: () => LatencyHistogram | undefined): void =>
      r.registerMetric(new LatencyHistogramMetric(name, help, read) as unknown as Metric);
    // ---- gateway
    gauge("vigil_build_info", "Gateway software version (value 1).", ["version"], (set) =>
      set({ version: o.version }, 1),
    );
    gauge(
      "vigil_gateway_info",
      "The gateway's identity (value 1): bytes32 id as registered, name and site.",
      ["gateway_id", "gateway", "site"],
      (set) =>
        set({ gateway_id: src.gatewayId, gateway: src.config.attest.gatewayName, site: src.config.site }, 1),
    );
    gauge(
      "vigil_ready",
      "1 when the gateway accepts frames (as /readyz: running, store ok, a source configured), else 0.",
      [],
      (set) => set({}, readiness(src).ready ? 1 : 0),
    );

    // ---- ingest
    const ing = () => src.ingest.counters;
    counter(
      "vigil_ingest_frames_received_total",
      "Frames that reached ingest (decoded or not), by transport.",
      ["source"],
      (set) => {
        for (const [k, v] of Object.entries(ing().bySource)) set({ source: k }, v.frames);
      },
    );
    counter(
      "vigil_ingest_frames_accepted_total",
      "DATA frames newly stored durably (then acknowledged).",
      [],
      (set) => set({}, ing().accepted),
    );
    counter(
      "vigil_ingest_frames_duplicate_total",
      "DATA frames already stored (acknowledged again, stored once).",
      [],
      (set) => set({}, ing().duplicates),
    );
    counter(
      "vigil_ingest_frames_clock_unverified_total",
      "DATA frames stored while the gateway clock was not known good, each marked clock-unverified in the store.",
      [],
      (set) => set({}, ing().clockUnverified),
    );
    counter(
      "vigil_ingest_frames_rejected_total",
      "Frames refused, by reason (decoder reasons such as BAD_CRC, and ingest reasons such as UNKNOWN_DEVICE; PROTOCOL.md).",
      ["reason"],
      (set) => {
        for (const [k, v] of Object.entries(ing().rejected)) set({ reason: k }, v);
      },
    );
    counter(
      "vigil_ingest_source_frames_rejected_total",
      "Frames refused, by transport (the same frames as vigil_ingest_frames_rejected_total).",
      ["source"],
      (set) => {
        for (const [k, v] of Object.entries(ing().bySource)) set({ source: k }, v.rejected);
      },
    );
    counter("vigil_ingest_hello_frames_total", "HELLO frames accepted.", [], (set) => set({}, ing().hellos));
    counter(
      "vigil_ingest_error_frames_total",
      "ERROR frames devices sent (all devices, also refused ones; per admitted device: vigil_device_error_frames_total).",
      [],
      (set) => set({}, ing().deviceErrors),
    );
    counter(
      "vigil_ingest_frames_shed_total",
      "Work shed under back-pressure, by reason: BUSY (serial DATA frames NACKed BUSY; the device resends them), mqttHeld (MQTT PUBACKs held until the store catches up).",
      ["reason"],
      (set) => {
        for (const [k, v] of Object.entries(ing().shedding)) set({ reason: k }, v);
      },
    );
    counter(
      "vigil_ingest_replies_sent_total",
      "ACK and NACK frames sent on serial links, by kind (MQTT devices get PUBACK and NACK messages instead).",
      ["source", "kind"],
      (set) => {
        set({ source: "serial", kind: "ack" }, ing().acksSent);
        set({ source: "serial", kind: "nack" }, ing().nacksSent);
      },
    );
    histogram(
      "vigil_ingest_durable_latency_seconds",
      "From a new DATA frame's arrival at ingest to the store's verdict (durable, duplicate or refused): the sender's wait for its ACK/PUBACK beyond the transport.",
      () => ing().durableLatency,
    );
    counter(
      "vigil_ingest_frames_out_of_order_total",
      "DATA frames that arrived after a later frame of the same device.",
      [],
      (set) => set({}, ing().totals().outOfOrder),
    );
    gauge(
      "vigil_ingest_frames_missing",
      "Sequence numbers skipped by devices and not (yet) filled by a late or resent frame.",
      [],
      (set) => set({}, ing().totals().gaps),
    );
    gauge("vigil_ingest_devices", "Devices ingest has seen (HELLO or DATA).", [], (set) =>
      set({}, ing().devices.size),
    );
    counter(
      "vigil_source_events_total",
      "Transport events by source: each source's own counters (serial opens/reopens/ioErrors/handlerErrors; external MQTT connects/offline/retries/handlerErrors; embedded broker connects/disconnects/retries/clientErrors/held/listenerErrors/brokerErrors and its refusal counters).",
      ["source", "event"],
      (set) => {
        for (const s of src.sources)
          for (const [k, v] of Object.entries(s.stats())) set({ source: s.name, event: k }, v);
      },
    );
    gauge(
      "vigil_source_connected",
      "1 when the source reaches its input now (the external broker's connection, the serial port open), else 0.",
      ["source"],
      (set) => {
        for (const s of src.sources) if (s.connected) set({ source: s.name }, s.connected() ? 1 : 0);
      },
    );
    gauge("vigil_source_clients", "Clients connected to the embedded broker now.", ["source"], (set) => {
      for (const s of src.sources) {
        if (s.clients) set({ source: s.name }, s.clients());
      }
    });
    // What the embedded broker's stored sessions hold now (stored-sessions.ts), one gauge a field.
    for (const [name, help, field] of [
      [
        "vigil_source_stored_sessions",
        "The embedded broker's stored sessions (clean session false, connected or not) now; bounded by mqtt.embedded.limits.maxStoredSessions.",
        "sessions",
      ],
      [
        "vigil_source_stored_messages",
        "QoS 1 messages the embedded broker keeps for stored sessions until acknowledged, now; bounded per session by mqtt.embedded.limits.maxStoredMessages.",
        "messages",
      ],
      [
        "vigil_source_stored_inbound",
        "Inbound QoS 2 message ids the embedded broker remembers until their PUBREL, now (every session's); bounded per client id by mqtt.embedded.limits.maxStoredMessages.",
        "inbound",
      ],
      [
        "vigil_source_stored_bytes",
        "Bytes of those messages and ids now (payload, topic and 256 per message, 256 per id); bounded by mqtt.embedded.limits.maxStoredBytes.",
        "bytes",
      ],
    ] as const)
      gauge(name, help, ["source"], (set) => {
        for (const s of src.sources) if (s.storedSessions) set({ source: s.name }, s.storedSessions()[field]);
      });

    // ---- devices
    counter(
      "vigil_device_frames_accepted_total",
      "DATA frames newly stored, by device.",
      ["device"],
      (set) => {
        for (const d of ing().devices.values()) set({ device: deviceIdHex(d.id) }, d.seq.accepted);
      },
    );
    counter(
      "vigil_device_frames_rejected_total",
      "Frames refused, by device (when the device id could be read).",
      ["device"],
      (set) => {
        for (const d of ing().devices.values()) set({ device: deviceIdHex(d.id) }, d.rejected);
      },
    );
    counter(
      "vigil_device_error_frames_total",
      "ERROR frames (fault reports) by admitted device and code: sensor_fault, buffer_overflow (frames lost on the device), protocol_error, other.",
      ["device", "code"],
      (set) => {
        for (const d of ing().devices.values())
          for (const [code, n] of d.errors)
            set({ device: deviceIdHex(d.id), code: deviceErrorCodeLabel(code) }, n);
      },
    );
    const liveWindow = (id: number) => src.loop?.liveWindow?.(id);
    gauge(
      "vigil_device_sensor_faults",
      "Channels of the device the data-quality stage currently holds in sensor fault (stuck, out of range, missing).",
      ["device"],
      (set) => {
        for (const d of ing().devices.values()) {
          const w = liveWindow(d.id);
          if (w) set({ device: deviceIdHex(d.id) }, w.qualityState.faults);
        }
      },
    );
    counter(
      "vigil_device_windows_withheld_total",
      "Windows of the device withheld for data quality (no prediction made from them).",
      ["device"],
      (set) => {
        for (const d of ing().devices.values()) {
          const w = liveWindow(d.id);
          if (w) set({ device: deviceIdHex(d.id) }, w.withheld);
        }
      },
    );
    gauge(
      "vigil_device_last_frame_timestamp_seconds",
      "Gateway time of the device's last DATA frame, seconds since the epoch.",
      ["device"],
      (set) => {
        for (const d of ing().devices.values())
          if (d.lastFrameUs > 0) set({ device: deviceIdHex(d.id) }, d.lastFrameUs / 1e6);
      },
    );
    gauge(
      "vigil_device_info",
      "Device as announced in its HELLO (value 1): profile and firmware.",
      ["device", "profile", "firmware"],
      (set) => {
        for (const d of ing().devices.values())
          if (d.profile !== undefined)
            set({ device: deviceIdHex(d.id), profile: d.profile, firmware: d.firmware ?? "" }, 1);
      },
    );
    gauge(
      "vigil_device_model_output",
      "Latest live model output per device (e.g. p_fail, rul), as published in its health.",
      ["device", "model", "output"],
      (set) => {
        for (const [id, h] of o.feed.devices)
          for (const [name, v] of h.outputs)
            set({ device: deviceIdHex(id), model: h.model.name, output: name }, v);
      },
    );

    // ---- inference
    const inf = () => src.loop?.counters;
    counter("vigil_inference_frames_total", "Stored DATA frames the inference loop saw.", [], (set) =>
      set({}, inf()?.framesSeen ?? 0),
    );
    counter(
      "vigil_inference_frames_not_run_total",
      "Frames not run through a model, by reason: no_model (no HELLO profile or no model for it), schema_mismatch (channels differ from the manifest).",
      ["reason"],
      (set) => {
        set({ reason: "no_model" }, inf()?.framesUnmodelled ?? 0);
        set({ reason: "schema_mismatch" }, inf()?.framesSchemaMismatch ?? 0);
      },
    );
    counter("vigil_inference_windows_run_total", "Live windows run through a model.", [], (set) =>
      set({}, inf()?.windowsRun ?? 0),
    );
    counter(
      "vigil_inference_windows_skipped_total",
      "Live windows not run, by reason: superseded (more than models.windowBacklog newer windows of the device were waiting, or its rows were overwritten; or a promotion), run_failed (the model run failed).",
      ["reason"],
      (set) => {
        set({ reason: "superseded" }, inf()?.skippedWindows ?? 0);
        set({ reason: "run_failed" }, inf()?.failedWindows ?? 0);
      },
    );
    counter(
      "vigil_inference_windows_withheld_total",
      "Live windows withheld for data quality (no prediction), by reason: window-imputed, row-imputed, features-lost (quality.window rules).",
      ["reason"],
      perReason(WINDOW_VERDICTS, () => inf()?.windowsWithheldBy),
    );
    counter(
      "vigil_inference_values_flagged_total",
      "Used-channel values of live frames the data-quality stage flagged and imputed, by reason: missing, out-of-range, stuck, spike.",
      ["reason"],
      perReason(QUALITY_REASONS, () => inf()?.valuesFlagged),
    );
    counter("vigil_inference_batches_total", "onnxruntime run() calls (all lanes).", [], (set) =>
      set({}, inf()?.batches ?? 0),
    );
    counter(
      "vigil_inference_errors_total",
      "Inference errors by kind: run (a model run failed), callback (a result consumer threw), warmup (a history read failed), history_damaged (a stored frame a warm-up read no longer decodes).",
      ["kind"],
      (set) => {
        set({ kind: "run" }, inf()?.runErrors ?? 0);
        set({ kind: "callback" }, inf()?.callbackErrors ?? 0);
        set({ kind: "warmup" }, inf()?.warmupErrors ?? 0);
        set({ kind: "history_damaged" }, inf()?.warmupDamaged ?? 0);
      },
    );
    gauge("vigil_inference_devices", "Devices routed to a live model.", [], (set) =>
      set({}, inf()?.devices ?? 0),
    );
    for (const [name, help, pick] of [
      [
        "vigil_inference_run_duration_seconds",
        "Time of one onnxruntime run() (a batch of device windows).",
        (c) => c.runLatency,
      ],
      [
        "vigil_inference_frame_to_result_seconds",
        "From the gateway's arrival of a window's last frame to its model result.",
        (c) => c.frameToResult,
      ],
      [
        "vigil_inference_tick_duration_seconds",
        "Wall time of one inference tick (all lanes).",
        (c) => c.tickLatency,
      ],
    ] as const satisfies ReadonlyArray<
      readonly [string, string, (c: NonNullable<ReturnType<typeof inf>>) => LatencyHistogram]
    >)
      histogram(name, help, () => {
        const c = inf();
        return c ? pick(c) : undefined;
      });

    // ---- models (lanes)
    const lanes = () => src.loop?.lanes() ?? [];
    gauge(
      "vigil_model_info",
      "Loaded models (value 1): name, version, sha256 of the ONNX file, lane role (live, shadow, retired) and the device profiles it serves.",
      ["model", "version", "sha256", "role", "profiles"],
      (set) => {
        for (const l of lanes())
          set(
            {
              model: l.model.manifest.name,
              version: l.model.manifest.version,
              sha256: l.model.sha256,
              role: l.role,
              profiles: l.model.manifest.devices.profiles.join(","),
            },
            1,
          );
      },
    );
    counter(
      "vigil_model_windows_run_total",
      "Windows run per model lane (shadow lanes included).",
      ["model", "version", "role"],
      (set) => {
        for (const l of lanes())
          set(
            { model: l.model.manifest.name, version: l.model.manifest.version, role: l.role },
            l.windowsRun,
          );
      },
    );
    gauge(
      "vigil_model_window_duration_seconds",
      "Mean model run time per window, per lane.",
      ["model", "version", "role"],
      (set) => {
        for (const l of lanes())
          if (l.windowsRun > 0)
            set(
              { model: l.model.manifest.name, version: l.model.manifest.version, role: l.role },
              l.usPerWindow / 1e6,
            );
      },
    );
    gauge(
      "vigil_model_shadow_output_difference",
      "Shadow lanes: mean and largest |shadow − live| of the first output over compared windows.",
      ["model", "version", "stat"],
      (set) => {
        for (const l of lanes())
          if (l.shadow) {
            const m = { model: l.model.manifest.name, version: l.model.manifest.version };
            set({ ...m, stat: "mean" }, l.shadow.meanAbsDiff);
            set({ ...m, stat: "max" }, l.shadow.maxAbsDiff);
          }
      },
    );

    // ---- alerts
    counter(
      "vigil_alerts_total",
      "Alert transitions by state (raised, cleared) and severity.",
      ["state", "severity"],
      (set) => {
        for (const [k, n] of o.feed.alertCounts) {
          const [state, severity] = k.split(" ") as [string, string];
          set({ state, severity }, n);
        }
      },
    );
    gauge("vigil_alerts_active", "Alerts raised and not cleared, by severity.", ["severity"], (set) => {
      const by = new Map<string, number>();
      for (const a of o.feed.active.values()) by.set(a.severity, (by.get(a.severity) ?? 0) + 1);
      for (const [severity, n] of by) set({ severity }, n);
    });
    counter(
      "vigil_events_published_total",
      "Events handed to the MQTT output, by kind (alert, health, device-status).",
      ["kind"],
      (set) => {
        const c = src.alerts.counters;
        set({ kind: "alert" }, c.alertsPublished);
        set({ kind: "health" }, c.healthPublished);
        set({ kind: "device-status" }, c.deviceStatusPublished);
      },
    );
    counter(
      "vigil_sensor_faults_total",
      "Sensor-fault episodes of the data-quality stage, by transition (raised, cleared); not machine alerts.",
      ["state"],
      (set) => {
        const c = src.alerts.counters;
        set({ state: "raised" }, c.sensorFaultsRaised);
        set({ state: "cleared" }, c.sensorFaultsCleared);
      },
    );
    counter("vigil_events_publish_errors_total", "Events the MQTT output failed to publish.", [], (set) =>
      set({}, src.alerts.counters.publishErrors),
    );
    counter(
      "vigil_health_results_throttled_total",
      "Model results held back by the per-device health interval (the latest is published later).",
      [],
      (set) => set({}, src.alerts.counters.healthThrottled),
    );

    // ---- store
    const st = () => src.store.stats();
    gauge(
      "vigil_store_state",
      "Store state (value 1 for the current one): ok, low-space, unavailable, corrupt, closed.",
      ["state"],
      (set) => {
        const cur = st().state;
        for (const s of ["ok", "low-space", "unavailable", "corrupt", "closed"])
          set({ state: s }, s === cur ? 1 : 0);
      },
    );
    gauge(
      "vigil_store_live_bytes",
      "Approximate bytes of the log entries kept (frames and leaf records, before compression).",
      [],
      (set) => set({}, st().liveBytes),
    );
    gauge("vigil_store_live_entries", "Log entries kept (frames and leaf records, not pruned).", [], (set) =>
      set({}, st().liveFrames),
    );
    gauge("vigil_store_pending_records", "Records waiting in the group-commit queue.", [], (set) =>
      set({}, st().pending),
    );
    counter("vigil_store_commits_total", "Group commits (synced batch writes) since start.", [], (set) =>
      set({}, st().commits),
    );
    histogram(
      "vigil_store_commit_write_duration_seconds",
      "One group commit's batch write with sync (the database log's fdatasync), as the event loop sees it.",
      () => src.store.commitTiming.write,
    );
    histogram(
      "vigil_store_commit_watermark_duration_seconds",
      "The watermark write and fdatasync after each group commit, as the event loop sees it.",
      () => src.store.commitTiming.watermark,
    );
    counter(
      "vigil_store_leaf_failures_total",
      "Attestation leaf records the store refused or failed to write since start.",
      [],
      (set) => set({}, st().leafFailures),
    );
    gauge(
      "vigil_disk_free_bytes",
      "Free bytes (for unprivileged users) on the filesystem holding the data directory.",
      [],
      (set) => {
        if (this.#scrape.disk) set({}, this.#scrape.disk.free);
      },
    );
    gauge("vigil_disk_size_bytes", "Size of the filesystem holding the data directory.", [], (set) => {
      if (this.#scrape.disk) set({}, this.#scrape.disk.size);
    });

    // ---- attestation and anchoring
    gauge("vigil_sealer_backlog_entries", "Durable log entries not yet sealed into a batch.", [], (set) => {
      if (src.sealer) set({}, src.sealer.backlog());
    });
    gauge(
      "vigil_sealer_running",
      "1 while frames are sealed and anchored, 0 while the gateway's standing in the registry stops both (frames are still stored).",
      [],
      (set) => {
        if (src.sealer) set({}, (src.access?.()?.sealing ?? true) ? 1 : 0);
      },
    );
    counter(
      "vigil_batches_sealed_total",
      "Batches sealed and signed (the last batch seq; kept across restarts).",
      [],
      (set) => set({}, st().lastBatchSeq),
    );
    counter(
      "vigil_batches_anchored_total",
      "Batches anchored on chain (the highest anchored seq; kept across restarts).",
      [],
      (set) => set({}, st().anchoredThrough),
    );
    gauge(
      "vigil_anchor_backlog_batches",
      "Sealed batches waiting in the outbox for anchoring.",
      [],
      (set) => {
        const s = st();
        set({}, s.lastBatchSeq - s.anchoredThrough);
      },
    );
    gauge(
      "vigil_anchor_lag_seconds",
      "Age of the oldest sealed batch not yet anchored (0 when the outbox is empty; absent when anchoring is off or that batch cannot be read).",
      [],
      (set) => {
        if (!src.anchor) return;
        const t = this.#scrape.oldestUnanchoredUs;
        // Batches wait but the oldest cannot be read: unknown, not 0 (an alert on the lag stays up).
        if (t === undefined && this.#scrape.outboxWaiting) return;
        set({}, t === undefined ? 0 : Math.max(0, (this.#nowUs() - t) / 1e6));
      },
    );
    gauge(
      "vigil_anchor_last_success_timestamp_seconds",
      "When the last anchored batch was recorded, seconds since the epoch.",
      [],
      (set) => {
        if (this.#scrape.lastAnchorUs !== undefined) set({}, this.#scrape.lastAnchorUs / 1e6);
      },
    );
    gauge(
      "vigil_anchor_consecutive_failures",
      "Anchoring runs that failed since the last success (retried with backoff).",
      [],
      (set) => {
        const a = src.anchor?.status();
        if (a) set({}, a.failures);
      },
    );
    gauge(
      "vigil_anchor_stalled",
      "1 while the anchor transaction in flight is not being mined, by reason (fee-cap: at the fee caps; no-blocks: the chain's head stopped).",
      ["reason"],
      (set) => {
        const a = src.anchor?.status();
        if (!a) return;
        for (const reason of ANCHOR_STALL_REASONS) set({ reason }, a.stalled?.reason === reason ? 1 : 0);
      },
    );
    gauge(
      "vigil_anchor_paused",
      "1 while anchoring is paused, by reason (fee-cap, spend-cap, gateway-inactive, signer-mismatch, insufficient-funds); ingest and sealing go on.",
      ["reason"],
      (set) => {
        const a = src.anchor?.status();
        if (!a) return;
        for (const reason of ANCHOR_PAUSE_REASONS) set({ reason }, a.paused?.reason === reason ? 1 : 0);
      },
    );
    counter(
      "vigil_anchor_gas_used_total",
      "Gas used by the gateway's anchor transactions since start.",
      [],
      (set) => {
        const v = src.anchor?.status().gasUsed;
        if (v !== undefined) set({}, num(v));
      },
    );
    counter(
      "vigil_anchor_fee_wei_total",
      "Fees paid for anchor transactions since start, wei, by layer: l2 (execution), l1 (OP-Stack data fee).",
      ["layer"],
      (set) => {
        const a = src.anchor?.status();
        if (a?.feeWei !== undefined) set({ layer: "l2" }, num(a.feeWei));
        if (a?.l1FeeWei !== undefined) set({ layer: "l1" }, num(a.l1FeeWei));
      },
    );

    // ---- registry watch: the copy's age once refreshed; its state and the gateway's standing while it runs
    gauge(
      "vigil_registry_cache_age_seconds",
      "Seconds since the local copy of the on-chain registry was refreshed.",
      [],
      (set) => {
        const reg = src.registry?.();
        if (reg) set({}, reg.cacheAgeSeconds);
      },
    );
    gauge(
      "vigil_registry_state",
      "The registry watch's copy (value 1 for the current one): fresh, stale (no refresh for registry.maxStaleMs), unsynced (none yet, no cache).",
      ["state"],
      (set) => {
        const a = src.access?.();
        if (a) for (const state of REGISTRY_STATES) set({ state }, a.registry === state ? 1 : 0);
      },
    );
    gauge(
      "vigil_gateway_standing",
      "The gateway's own standing in the registry (value 1 for the current one): active, unregistered, suspended, revoked, key_mismatch; anything but active stops sealing and anchoring.",
      ["standing"],
      (set) => {
        const a = src.access?.();
        if (a?.standing)
          for (const standing of GATEWAY_STANDINGS) set({ standing }, a.standing === standing ? 1 : 0);
      },
    );

    // ---- update agents: present while they run (updates.enabled), per agent kind
    const agents = (): [string, UpdateCountersView][] => {
      const st = this.#scrape.updates;
      const out: [string, UpdateCountersView][] = [];
      if (st?.model) out.push(["model", st.model.counters]);
      if (st?.firmware) out.push(["firmware", st.firmware.counters]);
      return out;
    };
    const perAgent = (name: string, help: string, read: (c: UpdateCountersView) => number): void =>
      counter(name, help, ["kind"], (set) => {
        for (const [kind, c] of agents()) set({ kind }, read(c));
      });
    perAgent(
      "vigil_update_checks_total",
      "Update checks of the chain's releases, by agent.",
      (c) => c.checks,
    );
    perAgent(
      "vigil_update_check_errors_total",
      "Update checks that failed (chain or RPC unreachable), by agent.",
      (c) => c.checkErrors,
    );
    perAgent("vigil_update_installs_total", "Releases installed, by agent.", (c) => c.installs);
    perAgent(
      "vigil_update_report_errors_total",
      "Install reports that could not be sent on chain (retried), by agent.",
      (c) => c.reportErrors,
    );
    counter(
      "vigil_update_rejected_total",
      "Releases refused, by agent and refusal code (updates/README.md).",
      ["kind", "code"],
      (set) => {
        for (const [kind, c] of agents())
          for (const [code, n] of Object.entries(c.rejected)) if (n !== undefined) set({ kind, code }, n);
      },
    );
    gauge(
      "vigil_update_stale",
      "1 while no model update check has succeeded for updates.staleAfterMs (the freeze alarm), else 0.",
      [],
      (set) => {
        const m = this.#scrape.updates?.model;
        if (m) set({}, m.stale ? 1 : 0);
      },
    );

    // ---- this endpoint
    gauge("vigil_http_sse_clients", "Live pages connected (server-sent events).", [], (set) =>
      set({}, o.http().sseClients),
    );
    counter(
      "vigil_http_sse_updates_skipped_total",
      "Page updates not sent to a slow client (it is sent a fresh snapshot once it catches up).",
      [],
      (set) => set({}, o.http().sseSkipped),
    );
    counter(
      "vigil_http_sse_evicted_total",
      "Live pages disconnected because their connection did not drain for 30 s.",
      [],
      (set) => set({}, o.http().sseEvicted),
    );
    counter(
      "vigil_http_connections_dropped_total",
      "Connections to this endpoint closed at accept because 128 were open.",
      [],
      (set) => set({}, o.http().connectionsDropped),
    );
    counter(
      "vigil_http_client_errors_total",
      "Requests refused before routing (malformed, headers too large, headers too slow), by the status answered.",
      ["code"],
      (set) => {
        for (const [code, n] of o.http().clientErrors) set({ code }, n);
      },
    );
    counter(
      "vigil_http_requests_total",
      "HTTP requests by path and status code.",
      ["path", "code"],
      (set) => {
        for (const [k, n] of o.http().requests) {
          const [path, code] = k.split(" ") as [string, string];
          set({ path, code }, n);
        }
      },
    );
  }
}
