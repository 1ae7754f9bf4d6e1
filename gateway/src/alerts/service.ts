/**
 * Turns inference results into MQTT messages: alert transitions (rules.ts) become `alert`
 * messages and ALERT attestation leaves, the latest outputs become the retained `health` of the
 * device, and the gateway's `status` goes online/offline. Publishing never blocks the loop:
 * publications are fire-and-forget with failures counted (`counters`).
 */
import { bytesToHex } from "../core/hex.ts";
import { alertLeafPreimage, leafFromPreimage } from "../core/leaf.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import type { InferenceResult, LeafSink } from "../infer/loop.ts";
import type { LoadedModel } from "../infer/registry.ts";
import type { AlertPayload, HealthPayload, ModelRef, StatusPayload } from "./payloads.ts";
import { isoUs } from "./payloads.ts";
import type { AlertPublisher } from "./publisher.ts";
import { RuleEngine, SEVERITY_CODE, type AlertTransition } from "./rules.ts";
import { alertTopics, type AlertTopics } from "./topics.ts";

export interface AlertServiceOptions {
  publisher: AlertPublisher;
  site: string;
  gatewayId: string;
  models: readonly LoadedModel[];
  clock?: Clock;
  onLeaf?: LeafSink;
  /** Per device, health is published at most this often, and at once on an alert transition. Default 1000 ms. */
  healthIntervalMs?: number;
  /** Called with each alert payload right after it was handed to the publisher (bench, logs). */
  onAlert?: (a: AlertPayload) => void;
  onError?: (e: unknown) => void;
}

export interface AlertCounters {
  raised: number;
  cleared: number;
  alertsPublished: number;
  healthPublished: number;
  healthThrottled: number;
  publishErrors: number;
}

interface HealthState {
  lastPublishUs: number;
  windows: number;
}

export class AlertService {
  readonly topics: AlertTopics;
  readonly rules = new RuleEngine();
  readonly counters: AlertCounters = {
    raised: 0,
    cleared: 0,
    alertsPublished: 0,
    healthPublished: 0,
    healthThrottled: 0,
    publishErrors: 0,
  };
  readonly #o: AlertServiceOptions;
  readonly #clock: Clock;
  readonly #healthUs: number;
  readonly #health = new Map<number, HealthState>();
  readonly #refs = new Map<LoadedModel, ModelRef>();
  #open = false;

  constructor(opts: AlertServiceOptions) {
    this.#o = opts;
    this.topics = alertTopics(opts.site, opts.gatewayId);
    this.#clock = opts.clock ?? systemClock;
    this.#healthUs = (opts.healthIntervalMs ?? 1000) * 1000;
    for (const m of opts.models)
      this.#refs.set(m, { name: m.manifest.name, version: m.manifest.version, sha256: m.sha256 });
  }

  status(state: "online" | "offline", reason: StatusPayload["reason"]): StatusPayload {
    const nowUs = this.#clock.nowUs();
    return {
      v: 1,
      type: "status",
      site: this.topics.site,
      gateway: this.topics.gateway,
      state,
      reason,
      time: isoUs(nowUs),
      timeUs: nowUs,
      models: this.#o.models.map((m) => ({ ...this.#ref(m), profiles: [...m.manifest.devices.profiles] })),
    };
  }

  /** Connects the publisher (with the offline status as last will) and publishes `online`. */
  async start(): Promise<void> {
    await this.#o.publisher.open({
      topic: this.topics.status,
      payload: JSON.stringify(this.status("offline", "will")),
    });
    this.#open = true;
    await this.#o.publisher.publish(this.topics.status, JSON.stringify(this.status("online", "start")), {
      qos: 1,
      retain: true,
    });
  }

  /** Flushes throttled health, publishes `offline` (retained) and closes the publisher. */
  async stop(): Promise<void> {
    if (!this.#open) return;
    await this.flushHealth();
    try {
      await this.#o.publisher.publish(this.topics.status, JSON.stringify(this.status("offline", "stop")), {
        qos: 1,
        retain: true,
      });
    } finally {
      this.#open = false;
      await this.#o.publisher.close();
    }
  }

  #ref(m: LoadedModel): ModelRef {
    let r = this.#refs.get(m);
    if (!r) this.#refs.set(m, (r = { name: m.manifest.name, version: m.manifest.version, sha256: m.sha256 }));
    return r;
  }

  /** Inference loop callback. */
  readonly onResult = (r: InferenceResult): void => {
    const { model } = r;
    const names = model.outputNames;
    const nowUs = r.atUs;
    const transitions = this.rules.evaluate(
      r.deviceId,
      model.manifest.name,
      model.manifest.alerts,
      (output) => {
        const i = names.indexOf(output);
        return i < 0 ? NaN : r.outputs[i]!;
      },
      nowUs,
    );
    for (const t of transitions) this.#alert(r, t, nowUs);
    this.#updateHealth(r, nowUs, transitions.length > 0);
  };

  #alert(r: InferenceResult, t: AlertTransition, nowUs: number): void {
    const rule = t.alert.rule;
    const preimage = alertLeafPreimage({
      modelHash: r.model.modelHash,
      inputWindowHash: r.windowHash,
      deviceId: r.deviceId,
      timestampUs: r.window.lastTimestampUs,
      severity: SEVERITY_CODE[rule.severity],
      // The leaf's rule string says which transition it attests.
      rule: t.state === "raised" ? rule.id : `${rule.id}:clear`,
      score: t.value,
    });
    const leaf = leafFromPreimage(preimage);
    if (t.state === "raised") this.counters.raised++;
    else this.counters.cleared++;
    try {
      this.#o.onLeaf?.({
        kind: "alert",
        hash: leaf,
        preimage,
        deviceId: r.deviceId,
        timestampUs: r.window.lastTimestampUs,
      });
    } catch (e) {
      this.#o.onError?.(e);
    }
    const payload: AlertPayload = {
      v: 1,
      type: "alert",
      id: t.alert.id,
      state: t.state,
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(r.deviceId),
      severity: rule.severity,
      rule: { id: rule.id, output: rule.output, op: rule.op, threshold: rule.threshold, clear: rule.clear },
      value: round(t.value),
      time: isoUs(nowUs),
      timeUs: nowUs,
      since: isoUs(t.alert.sinceUs),
      sinceUs: t.alert.sinceUs,
      model: this.#ref(r.model),
      window: {
        firstSeq: r.window.firstSeq,
        lastSeq: r.window.lastSeq,
        frames: r.window.frames,
        firstTimestampUs: r.window.firstTimestampUs,
        lastTimestampUs: r.window.lastTimestampUs,
        sha256: Buffer.from(r.windowHash).toString("hex"),
      },
      receipt: { leaf: bytesToHex(leaf), inferenceLeaf: bytesToHex(r.inferenceLeaf), batchSeq: null },
    };
    this.#send(this.topics.alert(r.deviceId), JSON.stringify(payload), false, "alert");
    this.#o.onAlert?.(payload);
  }

  #updateHealth(r: InferenceResult, nowUs: number, force: boolean): void {
    let h = this.#health.get(r.deviceId);
    if (!h) this.#health.set(r.deviceId, (h = { lastPublishUs: -Infinity, windows: 0 }));
    h.windows++;
    const due = force || nowUs - h.lastPublishUs >= this.#healthUs;
    if (!due) {
      // Built lazily: only the latest throttled result matters, and only at flush time.
      this.counters.healthThrottled++;
      this.#latest.set(r.deviceId, r);
      return;
    }
    this.#latest.delete(r.deviceId);
    void this.#publishHealth(r.deviceId, h, this.#healthPayload(r, nowUs, h.windows));
  }

  readonly #latest = new Map<number, InferenceResult>();

  #healthPayload(r: InferenceResult, nowUs: number, windows: number): HealthPayload {
    const outputs: Record<string, number> = {};
    r.model.outputNames.forEach((n, i) => (outputs[n] = round(r.outputs[i]!)));
    const dev = deviceIdHex(r.deviceId);
    return {
      v: 1,
      type: "health",
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: dev,
      profile: r.profile,
      time: isoUs(nowUs),
      timeUs: nowUs,
      model: this.#ref(r.model),
      outputs,
      lastFrame: {
        seq: r.window.lastSeq,
        timestampUs: r.window.lastTimestampUs,
        time: isoUs(r.window.lastTimestampUs),
        receivedUs: r.window.lastReceivedUs,
      },
      active: this.rules.active(r.deviceId).map((a) => ({
        id: a.id,
        rule: a.rule.id,
        severity: a.rule.severity,
        since: isoUs(a.sinceUs),
        sinceUs: a.sinceUs,
      })),
      windows,
    };
  }

  #publishHealth(deviceId: number, h: HealthState, p: HealthPayload): Promise<void> {
    h.lastPublishUs = p.timeUs;
    return this.#send(this.topics.health(deviceId), JSON.stringify(p), true, "health");
  }

  /** Publishes the latest throttled health of every device now (called at stop and by tests). */
  async flushHealth(): Promise<void> {
    const nowUs = this.#clock.nowUs();
    const all: Promise<void>[] = [];
    for (const [id, r] of this.#latest) {
      const h = this.#health.get(id)!;
      all.push(this.#publishHealth(id, h, this.#healthPayload(r, nowUs, h.windows)));
    }
    this.#latest.clear();
    await Promise.allSettled(all);
  }

  #send(topic: string, payload: string, retain: boolean, what: "alert" | "health"): Promise<void> {
    if (what === "alert") this.counters.alertsPublished++;
    else this.counters.healthPublished++;
    return this.#o.publisher.publish(topic, payload, { qos: 1, retain }).catch((e: unknown) => {
      this.counters.publishErrors++;
      this.#o.onError?.(e);
    });
  }
}

/** 4 decimals: enough for RUL cycles and scores, and stable JSON across platforms. */
function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
