/**
 * One simulated MCU: produces HELLO and DATA frames from a signal source, keeps every DATA
 * frame until the gateway ACKs it, resends after a timeout with exponential backoff
 * (500 ms → 8 s, the C reference's bounds in hardware/firmware-ref; unlike the C ring, which
 * resends only its oldest frame, each frame here has its own timer), and obeys NACK reasons
 * (a BUSY NACK holds all sending for its retry_after_ms, like vigil_txq).
 */
import {
  encodeFrame,
  FrameType,
  NackReason,
  RETRYABLE_NACKS,
  type AckFrame,
  type NackFrame,
} from "../../gateway/src/protocol/frame.ts";
import {
  FaultCounters,
  ScriptedFaults,
  SensorFaults,
  type FaultRates,
  type ScriptedSensorFault,
} from "./faults.ts";
import type { SimFirmware } from "./firmware/bootloader.ts";
import type { SignalSource } from "./profiles/types.ts";
import type { Rng } from "./rng.ts";

export interface Pending {
  seq: number;
  raw: Buffer;
  sentAt: number;
  timeout: number;
  attempts: number;
  /**
   * Ground truth the simulator keeps for accounting: the rejection this frame must get at
   * the gateway on every transmission (a clock jump). A NaN/±Inf value is not one: since
   * protocol revision 1.2 the gateway stores and acknowledges such a frame.
   */
  poison?: "ABSURD_TIMESTAMP";
  /** Intact transmissions so far; every one after the first is a duplicate at the gateway. */
  sends: number;
  /** True once the frame went through the link-fault draw of its first transmission. */
  offered?: boolean;
}

export interface DeviceStats {
  generated: number;
  acked: number;
  /** ACKs for sequences no longer pending: the gateway saw a duplicate (or re-ACKed). */
  dupAcks: number;
  resent: number;
  nacked: Record<string, number>;
  /** Frames dropped by the device because a NACK said they will never be accepted. */
  abandoned: number;
  /** Frames lost because the unacknowledged window was full (ERROR code 2 on hardware). */
  overflowed: number;
  /** Unacknowledged frames lost from RAM by a reboot (never acknowledged, so no promise broken). */
  lostAtReboot: number;
}

export interface SimDeviceOptions {
  id: number;
  source: SignalSource;
  rng: Rng;
  faults: FaultRates;
  counters: FaultCounters;
  /** Device clock offset from true time, µs (a constant skew). Default 0. */
  clockSkewUs?: number;
  /** Unacknowledged frames kept for resend. Default 256. */
  window?: number;
  /** First resend timeout, ms. Default 500. */
  resendMs?: number;
  firmware?: { major: number; minor: number; patch: number };
  /** Firmware update code and bootloader; when set, HELLO announces the version it runs. */
  updater?: SimFirmware;
  /** Called with every DATA frame the device saw acknowledged (its exact bytes), once. */
  onAcked?: (raw: Buffer) => void;
  /** Deterministic sensor faults (faults.ts ScriptedSensorFault), applied after the random ones. */
  script?: readonly ScriptedSensorFault[];
}

const NACK_NAMES = Object.fromEntries(Object.entries(NackReason).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;
const TEN_YEARS_US = 10 * 365 * 86_400 * 1e6;

export class SimDevice {
  readonly id: number;
  readonly source: SignalSource;
  /** Every unacknowledged frame (sent or queued), by sequence: what the device keeps in RAM. */
  readonly pending = new Map<number, Pending>();
  /**
   * Pending frames handed to the link, with a resend timer; the resend scan walks only these. A
   * link at its in-flight limit keeps the rest in `#queued`, so at overload the scan does not
   * grow with the backlog (it used to walk every pending frame every loop: O(backlog) per 5 ms).
   */
  readonly #sent = new Map<number, Pending>();
  /** Pending frames the link refused (in-flight window full, disconnected), by sequence. */
  readonly #queued = new Map<number, Pending>();
  /** The same frames in the order they were queued; entries no longer queued are skipped lazily. */
  #fifo: Pending[] = [];
  #head = 0;
  readonly stats: DeviceStats = {
    generated: 0,
    acked: 0,
    dupAcks: 0,
    resent: 0,
    nacked: {},
    abandoned: 0,
    overflowed: 0,
    lostAtReboot: 0,
  };
  /** The next frame index to generate (the signal source's step). */
  step = 0;
  /** The step at which the current boot started: the DATA sequence is step − bootStep (mod 2^32). */
  bootStep = 0;
  bootId = 1;
  /**
   * Set when the gateway said UNKNOWN_DEVICE / REVOKED_DEVICE (PROTOCOL.md, NACK table: "keep its
   * frames, stop sending until re-provisioned"): the device sends nothing more in this run (no new
   * DATA, no resend, no queued frame, no HELLO), and its unacknowledged frames stay in `pending`.
   * Neither a reconnect nor a HELLO resumes it (the C reference's vigil_txq_resume() is the
   * application's, after a re-registration; the simulator never re-provisions).
   */
  stopped = false;
  /** Until this time (ms) a BUSY NACK holds all DATA sending (PROTOCOL.md, NACK BUSY). */
  heldUntil = 0;
  readonly #opts: SimDeviceOptions;
  readonly #sensor: SensorFaults;
  readonly #script: ScriptedFaults | undefined;
  /** Sequences refused for good whose (MQTT) PUBACK may still arrive. */
  readonly #abandoned = new Set<number>();
  #cached: Float32Array | undefined;
  #cachedStep = -1;

  constructor(opts: SimDeviceOptions) {
    this.#opts = opts;
    this.id = opts.id >>> 0;
    this.source = opts.source;
    this.#sensor = new SensorFaults(opts.rng.fork("sensor"), opts.faults, opts.counters);
    this.#script = opts.script?.length
      ? new ScriptedFaults(
          opts.script,
          this.id,
          opts.source.channels.map((c) => c.name),
        )
      : undefined;
  }

  get finished(): boolean {
    return this.stopped || this.#peek() === undefined;
  }

  /**
   * The sample for the current step, drawn once: sources are stateful (seeded noise, thermal
   * lag), so asking twice must not advance them, or a run would depend on timing.
   */
  #peek(): Float32Array | undefined {
    if (this.#cachedStep !== this.step) {
      this.#cached = this.source.sample(this.step);
      this.#cachedStep = this.step;
    }
    return this.#cached;
  }

  hello(): Buffer {
    return encodeFrame({
      type: FrameType.Hello,
      deviceId: this.id,
      bootId: this.bootId,
      firmware: this.#opts.updater?.running?.version ??
        this.#opts.firmware ?? { major: 1, minor: 0, patch: 0 },
      profile: this.source.profile,
      channels: [...this.source.channels],
    });
  }

  /**
   * Generates the next DATA frame (value faults applied) and registers it as pending, or
   * returns undefined when the source has ended or the device stopped.
   */
  nextData(nowMs: number): Pending | undefined {
    if (this.stopped) return undefined;
    const sample = this.#peek();
    if (!sample) return undefined;
    const values = Float32Array.from(sample);
    this.#sensor.apply(values);
    this.#script?.apply(values, this.step, this.#opts.counters);
    let poison: Pending["poison"];
    let ts = Math.round(nowMs * 1000 + (this.#opts.clockSkewUs ?? 0));
    if (this.#opts.rng.chance(this.#opts.faults.clockJump ?? 0)) {
      ts += TEN_YEARS_US;
      this.#opts.counters.count("clockJump");
      poison ??= "ABSURD_TIMESTAMP";
    }
    const seq = (this.step - this.bootStep) >>> 0;
    this.step++;
    const raw = encodeFrame({
      type: FrameType.Data,
      deviceId: this.id,
      seq,
      timestampUs: ts,
      flags: 0,
      values,
    });
    this.stats.generated++;
    const window = this.#opts.window ?? 256;
    if (this.pending.size >= window) {
      const oldest = this.pending.keys().next().value as number;
      this.#forget(oldest);
      this.stats.overflowed++;
    }
    const p: Pending = {
      seq,
      raw,
      sentAt: nowMs,
      timeout: this.#opts.resendMs ?? 500,
      attempts: 1,
      sends: 0,
      ...(poison ? { poison } : {}),
    };
    this.pending.set(seq, p);
    this.#sent.set(seq, p);
    return p;
  }

  /** Removes a frame from RAM (acknowledged, overflowed, refused for good). */
  #forget(seq: number): boolean {
    this.#sent.delete(seq);
    this.#queued.delete(seq);
    return this.pending.delete(seq);
  }

  /** True while frames wait for the link: new frames queue behind them (no overtaking). */
  get hasQueued(): boolean {
    return this.#queued.size > 0;
  }

  /** The link refused `p`: it waits in order, without a resend timer, until the link takes it. */
  queue(p: Pending): void {
    if (this.pending.get(p.seq) !== p || this.#queued.has(p.seq)) return;
    this.#sent.delete(p.seq);
    this.#queued.set(p.seq, p);
    this.#fifo.push(p);
  }

  /** The oldest queued frame, or undefined (amortised O(1)). */
  firstQueued(): Pending | undefined {
    while (this.#head < this.#fifo.length) {
      const p = this.#fifo[this.#head]!;
      if (this.#queued.get(p.seq) === p) {
        if (this.#head > 4096 && this.#head * 2 > this.#fifo.length) {
          this.#fifo = this.#fifo.slice(this.#head);
          this.#head = 0;
        }
        return p;
      }
      this.#head++;
    }
    this.#fifo = [];
    this.#head = 0;
    return undefined;
  }

  /** The link took queued frame `p` at `nowMs`: its resend timer starts now. */
  markSent(p: Pending, nowMs: number): void {
    if (!this.#queued.delete(p.seq)) return;
    p.sentAt = nowMs;
    this.#sent.set(p.seq, p);
  }

  /**
   * Frames whose resend timer expired; marks them resent with doubled timeout (max 8 s).
   * `owned(p)`: the link still owns an earlier transmission (an MQTT PUBLISH awaiting its
   * PUBACK): its timer restarts, and it is not resent.
   */
  dueForResend(nowMs: number, owned?: (p: Pending) => boolean): Pending[] {
    const due: Pending[] = [];
    for (const p of this.#sent.values()) {
      if (nowMs - p.sentAt >= p.timeout) {
        if (owned?.(p)) {
          p.sentAt = nowMs;
          continue;
        }
        p.sentAt = nowMs;
        p.timeout = Math.min(p.timeout * 2, 8000);
        p.attempts++;
        this.stats.resent++;
        due.push(p);
      }
    }
    return due;
  }

  onAck(ack: AckFrame): void {
    for (let i = 0; i < ack.count; i++) {
      const seq = (ack.firstSeq + i) >>> 0;
      const p = this.pending.get(seq);
      if (p) {
        this.#forget(seq);
        // Over MQTT a refused frame is PUBACKed too (3.1.1 has no negative PUBACK); the
        // simulator knows it was refused and books it as abandoned, not delivered.
        if (p.poison) this.#abandon(seq);
        else {
          this.stats.acked++;
          this.#opts.onAcked?.(p.raw);
        }
      } else if (!this.#abandoned.has(seq)) this.stats.dupAcks++;
    }
  }

  #abandon(seq: number): void {
    this.stats.abandoned++;
    this.#abandoned.add(seq);
  }

  /** The firmware update code, if this device has one. */
  get updater(): SimFirmware | undefined {
    return this.#opts.updater;
  }

  /** True while a BUSY hold is in force: nothing is sent, new samples wait in the window. */
  held(nowMs: number): boolean {
    return nowMs < this.heldUntil;
  }

  /** Applies a NACK; returns true when the frame should be resent now. */
  onNack(nack: NackFrame, nowMs: number = Date.now()): boolean {
    const name = NACK_NAMES[nack.reason] ?? `REASON_${nack.reason}`;
    this.stats.nacked[name] = (this.stats.nacked[name] ?? 0) + 1;
    if (nack.reason === NackReason.BUSY) {
      // Hold everything for retry_after_ms (the longest hold wins); the frame goes out first after it.
      this.heldUntil = Math.max(this.heldUntil, nowMs + (nack.retryAfterMs ?? 0));
      const p = this.pending.get(nack.seq);
      if (p) {
        p.sentAt = nowMs;
        p.timeout = this.heldUntil - nowMs;
      }
      return false;
    }
    if (nack.reason === NackReason.UNKNOWN_DEVICE || nack.reason === NackReason.REVOKED_DEVICE) {
      this.stopped = true;
      return false;
    }
    // A stopped device keeps the frame but sends nothing (no HELLO, no resend).
    if (RETRYABLE_NACKS.has(nack.reason)) return !this.stopped && nack.reason === NackReason.SCHEMA_MISMATCH;
    if (this.#forget(nack.seq)) this.#abandon(nack.seq);
    return false;
  }

  /**
   * Simulates an MCU reboot: a new boot id, the sequence restarts at 0 and the unacknowledged
   * frames in the RAM ring are lost (counted in `lostAtReboot`). Returns the lost frames.
   */
  reboot(): Pending[] {
    this.bootId++;
    this.bootStep = this.step;
    const lost = [...this.pending.values()];
    this.stats.lostAtReboot += lost.length;
    this.pending.clear();
    this.#sent.clear();
    this.#queued.clear();
    this.#fifo = [];
    this.#head = 0;
    this.#abandoned.clear();
    return lost;
  }
}
