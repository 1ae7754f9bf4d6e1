import { LatencyHistogram } from "../core/histogram.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import type { RejectReason } from "./errors.ts";
import type { IngestReply } from "./reply.ts";
import { SequenceTracker } from "./sequence.ts";

export type SourceKind = "serial" | "mqtt";

/** Per-device ingest state: schema from HELLO, sequence statistics, rejections, rate. */
export class DeviceState {
  readonly seq = new SequenceTracker();
  channels: number | undefined;
  /** Channel names from the last HELLO, frame order (a new array per HELLO). */
  channelNames: readonly string[] | undefined;
  profile: string | undefined;
  bootId: number | undefined;
  firmware: string | undefined;
  crcErrors = 0;
  rejected = 0;
  /** ERROR frames the device sent, by code (PROTOCOL.md, ERROR: 1 sensor fault, 2 buffer overflow, …). */
  readonly errors = new Map<number, number>();
  /** Stored DATA frames that carried NaN/±Inf values, and those values (per channel: `nonFiniteByChannel`). */
  nonFiniteFrames = 0;
  nonFiniteValues = 0;
  /** Non-finite values per frame channel (index = channel; grows to the widest frame seen). */
  readonly nonFiniteByChannel: number[] = [];
  lastFrameUs = 0;
  /** Exponentially weighted frame rate, frames/s. */
  rate = 0;
  /**
   * A frame under a sequence number whose stored frame retention pruned cannot be compared with
   * it: a resend, or a new boot whose HELLO was lost (PROTOCOL.md, "A lost HELLO"). 0: none asked;
   * 1: one was NACKed SCHEMA_MISMATCH (the device sends HELLO, then resends); 2: that HELLO repeated
   * the current boot, so such frames are resends, until the next newly stored frame.
   */
  prunedSeqs: 0 | 1 | 2 = 0;
  /** Frames being stored (extended seq → the reply once durable, and the frame's bytes). */
  readonly inflight = new Map<number, { done: Promise<IngestReply>; raw: Uint8Array }>();

  constructor(readonly id: number) {}

  noteArrival(nowUs: number): void {
    if (this.lastFrameUs > 0) {
      const dt = (nowUs - this.lastFrameUs) / 1e6;
      if (dt > 0) this.rate = this.rate === 0 ? 1 / dt : 0.9 * this.rate + 0.1 * (1 / dt);
    }
    this.lastFrameUs = nowUs;
  }
}

/**
 * Every counter of the ingest stage, readable while running (log line; later the
 * Prometheus endpoint). Rejections are counted by reason and by source.
 */
export class IngestCounters {
  accepted = 0;
  duplicates = 0;
  hellos = 0;
  deviceErrors = 0;
  acksSent = 0;
  nacksSent = 0;
  /**
   * Stored DATA frames with NaN/±Inf values (well-formed since protocol revision 1.2: stored and
   * acknowledged, the channels marked; not a rejection), and the values.
   */
  nonFiniteFrames = 0;
  nonFiniteValues = 0;
  /**
   * DATA frames stored while the gateway clock was not known good (clock-trust.ts), each marked
   * `clockUnverified` in its store record (timestamps beyond the skew limit included: accepted).
   */
  clockUnverified = 0;
  readonly rejected: Partial<Record<RejectReason, number>> = {};
  /**
   * Work turned away to protect the gateway, by reason (not a verdict on the frame: the sender
   * keeps it and resends): BUSY NACKs on serial, MQTT clients paused (`mqttPaused`).
   */
  readonly shedding: Record<string, number> = {};
  readonly bySource: Record<SourceKind, { frames: number; rejected: number }> = {
    serial: { frames: 0, rejected: 0 },
    mqtt: { frames: 0, rejected: 0 },
  };
  readonly devices = new Map<number, DeviceState>();
  /**
   * µs from a new DATA frame's arrival at ingest to its verdict from the store (durable, a
   * duplicate, or refused): what the sender waits for its ACK/PUBACK beyond the transport.
   */
  readonly durableLatency = new LatencyHistogram();

  device(id: number): DeviceState {
    let d = this.devices.get(id);
    if (!d) this.devices.set(id, (d = new DeviceState(id)));
    return d;
  }

  reject(reason: RejectReason, source: SourceKind, deviceId?: number): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
    this.bySource[source].rejected++;
    if (deviceId !== undefined) {
      const d = this.devices.get(deviceId);
      if (d) {
        d.rejected++;
        if (reason === "BAD_CRC") d.crcErrors++;
      }
    }
  }

  /** Counts an ERROR frame of a known device; returns how many of this code the device sent. */
  deviceError(deviceId: number, code: number): number {
    this.deviceErrors++;
    const d = this.device(deviceId);
    const n = (d.errors.get(code) ?? 0) + 1;
    d.errors.set(code, n);
    return n;
  }

  /** Counts work shed by reason (back-pressure), by source. */
  shed(reason: string, _source?: SourceKind): void {
    this.shedding[reason] = (this.shedding[reason] ?? 0) + 1;
  }

  get totalRejected(): number {
    let n = 0;
    for (const v of Object.values(this.rejected)) n += v;
    return n;
  }

  totals(): { gaps: number; outOfOrder: number } {
    let gaps = 0;
    let outOfOrder = 0;
    for (const d of this.devices.values()) {
      gaps += d.seq.gaps;
      outOfOrder += d.seq.outOfOrder;
    }
    return { gaps, outOfOrder };
  }

  /** A plain-object snapshot for logs, tests and the metrics endpoint. */
  snapshot(): IngestSnapshot {
    const { gaps, outOfOrder } = this.totals();
    return {
      accepted: this.accepted,
      duplicates: this.duplicates,
      outOfOrder,
      gaps,
      hellos: this.hellos,
      deviceErrors: this.deviceErrors,
      acksSent: this.acksSent,
      nacksSent: this.nacksSent,
      nonFiniteFrames: this.nonFiniteFrames,
      nonFiniteValues: this.nonFiniteValues,
      clockUnverified: this.clockUnverified,
      rejected: { ...this.rejected },
      shedding: { ...this.shedding },
      bySource: { serial: { ...this.bySource.serial }, mqtt: { ...this.bySource.mqtt } },
      devices: [...this.devices.values()].map((d) => ({
        id: deviceIdHex(d.id),
        lastSeq: d.seq.highest,
        accepted: d.seq.accepted,
        gaps: d.seq.gaps,
        outOfOrder: d.seq.outOfOrder,
        duplicates: d.seq.duplicates,
        crcErrors: d.crcErrors,
        rejected: d.rejected,
        nonFiniteFrames: d.nonFiniteFrames,
        nonFiniteByChannel: [...d.nonFiniteByChannel],
        rate: Math.round(d.rate * 10) / 10,
      })),
    };
  }

  /** One log line: totals and rejections by reason. */
  line(): string {
    const s = this.snapshot();
    const rej = Object.entries(s.rejected)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    return (
      `devices=${s.devices.length} accepted=${s.accepted} dup=${s.duplicates} ooo=${s.outOfOrder} gaps=${s.gaps} ` +
      `rejected=${this.totalRejected}${rej ? ` (${rej})` : ""}` +
      (s.nonFiniteFrames ? ` nonFinite=${s.nonFiniteFrames}` : "")
    );
  }
}

export interface IngestSnapshot {
  accepted: number;
  duplicates: number;
  outOfOrder: number;
  gaps: number;
  hellos: number;
  deviceErrors: number;
  acksSent: number;
  nacksSent: number;
  nonFiniteFrames: number;
  nonFiniteValues: number;
  clockUnverified: number;
  rejected: Partial<Record<RejectReason, number>>;
  shedding: Record<string, number>;
  bySource: Record<SourceKind, { frames: number; rejected: number }>;
  devices: Array<{
    id: string;
    lastSeq: number;
    accepted: number;
    gaps: number;
    outOfOrder: number;
    duplicates: number;
    crcErrors: number;
    rejected: number;
    nonFiniteFrames: number;
    /** Non-finite values per frame channel. */
    nonFiniteByChannel: number[];
    rate: number;
  }>;
}
