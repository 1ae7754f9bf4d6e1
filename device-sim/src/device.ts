/**
 * One simulated MCU: produces HELLO and DATA frames from a signal source, keeps every DATA
 * frame until the gateway ACKs it, resends after a timeout with exponential backoff
 * (500 ms → 8 s, the C reference's bounds in hardware/firmware-ref; unlike the C ring, which
 * resends only its oldest frame, each frame here has its own timer), and obeys NACK reasons
 * (a BUSY NACK holds all sending for its retry_after_ms, like vigil_txq; over MQTT also after a
 * PUBACK of the frame, {@link SimDevice.onNack}). A full ring drops its oldest frame and reports
 * it with ERROR code 2 ({@link SimDevice.overflowReportDue}). A device NACKed
 * UNKNOWN_DEVICE / REVOKED_DEVICE stops and probes (PROTOCOL.md, "A stopped device"; the C
 * reference's Arduino example, hardware/firmware-ref/examples/arduino/): see {@link SimDevice.stopped}.
 */
import {
  encodeFrame,
  FrameType,
  NackReason,
  RETRYABLE_NACKS,
  SCHEMA_MISMATCH_MAX,
  WITHHOLD_PUBACK_NACKS,
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
   * the gateway on every transmission (a clock jump), counted in the expected rejections; an
   * acknowledgement of it (an MQTT PUBACK) books it abandoned ({@link SimDevice} `#ack`). A NaN/±Inf
   * value is not one: since protocol revision 1.2 the gateway stores and acknowledges such a frame.
   */
  poison?: "ABSURD_TIMESTAMP";
  /** Intact transmissions so far; every one after the first is a duplicate at the gateway. */
  sends: number;
  /** SCHEMA_MISMATCH NACKs of this frame so far (PROTOCOL.md: dropped at `SCHEMA_MISMATCH_MAX`). */
  schemaMismatches?: number;
  /** True once the frame went through the link-fault draw of its first transmission. */
  offered?: boolean;
  /** The source step it was generated at: the ring's age order (set by {@link SimDevice.nextData}). */
  step?: number;
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
  /** Frames lost because the unacknowledged window was full (reported with ERROR code 2). */
  overflowed: number;
  /** Unacknowledged frames lost from RAM by a reboot (never acknowledged, so no promise broken). */
  lostAtReboot: number;
  /** Probes sent while stopped (HELLO + the oldest kept DATA frame; PROTOCOL.md, "A stopped device"). */
  probes: number;
  /** Times a probe was acknowledged and the stopped device resumed. */
  resumes: number;
  /** Frames the ring dropped while the device was stopped (also in `overflowed`). */
  droppedWhileStopped: number;
  /** ERROR code 2 frames sent: reports of frames the full ring dropped ({@link SimDevice.overflowReportDue}). */
  overflowReports: number;
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
  /** First resend timeout, ms; also how long a probe waits for its reply. Default 500. */
  resendMs?: number;
  /**
   * Stopped (UNKNOWN_DEVICE / REVOKED_DEVICE): a probe every this many ms, the first one this
   * long after the stop; 0 = never probe (stopped until the run ends or a reboot). Default 60 000, the
   * protocol's "at most once a minute".
   */
  probeIntervalMs?: number;
  firmware?: { major: number; minor: number; patch: number };
  /** Firmware update code and bootloader; when set, HELLO announces the version it runs. */
  updater?: SimFirmware;
  /**
   * Called with every DATA frame the device saw acknowledged (its exact bytes), once. Over MQTT,
   * where a refused frame is PUBACKed before its NACK, only once no NACK followed the PUBACK within
   * `resendMs` ({@link SimDevice.settle}): a frame taken back by such a NACK is not reported.
   */
  onAcked?: (raw: Buffer) => void;
  /** Deterministic sensor faults (faults.ts ScriptedSensorFault), applied after the random ones. */
  script?: readonly ScriptedSensorFault[];
  /**
   * The boot_id of the device's first boot (its first HELLO), a whole number in [0, 2^32); each
   * {@link SimDevice.reboot} adds one (mod 2^32). Default 1. The simulator (simulator.ts) passes a fresh
   * one per run: a new simulator process is a new boot of every device (PROTOCOL.md: "a device
   * must increment `boot_id` … on every boot").
   */
  bootId?: number;
}

const NACK_NAMES = Object.fromEntries(Object.entries(NackReason).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;
const TEN_YEARS_US = 10 * 365 * 86_400 * 1e6;
/** PROTOCOL.md, "A stopped device": at most one probe a minute. */
export const DEFAULT_PROBE_INTERVAL_MS = 60_000;
/** At most one ERROR code 2 (frames lost to a full ring) per device this often, ms. */
export const OVERFLOW_REPORT_INTERVAL_MS = 1000;

/** The probe in flight: its DATA frame's sequence, when it went out, when its PUBACK came. */
interface Probe {
  seq: number;
  sentAt: number;
  /** MQTT: the PUBACK of the probe frame (refused frames are PUBACKed too: confirmed by silence). */
  pubackAt?: number;
  /** The probe frame, if the full ring dropped it while its reply was on the way. */
  dropped?: Pending;
}

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
    probes: 0,
    resumes: 0,
    droppedWhileStopped: 0,
    overflowReports: 0,
  };
  /** The next frame index to generate (the signal source's step). */
  step = 0;
  /** The step at which the current boot started: the DATA sequence is step − bootStep (mod 2^32). */
  bootStep = 0;
  /** The current boot's boot_id (SimDeviceOptions.bootId, plus one per reboot, mod 2^32). */
  bootId: number;
  /**
   * Set when the gateway said UNKNOWN_DEVICE / REVOKED_DEVICE (PROTOCOL.md, "A stopped device"):
   * the device keeps its frames and samples on into its ring (a full ring drops the oldest,
   * counted in `droppedWhileStopped`), but sends no DATA, no ERROR, no resend, no queued frame and
   * no HELLO after a reconnect. Every `probeIntervalMs` (the first one that long after the stop)
   * it probes: HELLO, then its oldest kept DATA frame ({@link startProbe}). An ACK naming that
   * frame resumes it ({@link onAck}; over MQTT, where refused frames are PUBACKed too, the
   * frame's PUBACK followed by no refusal for `resendMs`: {@link onDelivered}, {@link tick}); a
   * NACK UNKNOWN_DEVICE / REVOKED_DEVICE or silence keeps it stopped until the next probe; a
   * reboot ends the stop ({@link reboot}). As in the C reference's Arduino example
   * (hardware/firmware-ref/examples/arduino/).
   */
  stopped = false;
  /**
   * Frames the full ring dropped and not yet reported with ERROR code 2 (PROTOCOL.md, "Serial
   * framing: COBS": "when the ring is full it drops the oldest and reports ERROR code 2"), and how
   * many of them it dropped while stopped. See {@link overflowReportDue} for when a report goes out.
   */
  #unreportedDrops = 0;
  #unreportedWhileStopped = 0;
  /** When the last ERROR code 2 went out (ms); -Infinity: none since the last resume or boot. */
  #lastOverflowReportAt = -Infinity;
  /** When the next probe is due (ms), while stopped. */
  #nextProbeAt = Infinity;
  #probe: Probe | undefined;
  /**
   * Frames removed by an implicit acknowledgement (an MQTT PUBACK) in the last `resendMs`, oldest
   * first. Over MQTT the gateway PUBACKs every refused frame except those NACKed with a withhold
   * reason, and its NACK may arrive after the PUBACK (PROTOCOL.md, "MQTT transport"): a NACK
   * for one of them takes it back (the gateway refused it: it was not stored) and the device
   * then does what the NACK table says, as for a frame still pending ({@link onNack}). Past
   * `resendMs` the PUBACK stands: {@link settle} reports the frame to `onAcked`.
   */
  readonly #recentlyDelivered = new Map<number, { p: Pending; at: number }>();
  /**
   * Pending frames NACKed (with a reason that keeps them) while their MQTT PUBLISH may still be
   * PUBACKed: that PUBACK acknowledges a refused frame, so it is ignored. Cleared when the frame
   * goes on the link again ({@link transmitted}: the earlier PUBLISH was PUBACKed or lost with its
   * connection by then) or leaves the ring.
   */
  readonly #refusedInFlight = new Set<number>();
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
    const boot = opts.bootId ?? 1;
    if (!Number.isInteger(boot) || boot < 0 || boot > 0xffffffff)
      throw new RangeError(`bootId must be a whole number in [0, 4294967295], got ${boot}`);
    this.bootId = boot;
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

  /** The source has ended (a stopped device samples on: it is not finished). */
  get finished(): boolean {
    return this.#peek() === undefined;
  }

  get #probeIntervalMs(): number {
    return this.#opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
  }

  get #replyTimeoutMs(): number {
    return this.#opts.resendMs ?? 500;
  }

  /** Whether a stopped device may still resume in this run (it probes). */
  get probes(): boolean {
    return this.#probeIntervalMs > 0;
  }

  /** When the next probe is due (ms; Infinity when not stopped, or never probing). */
  get nextProbeAt(): number {
    return this.#nextProbeAt;
  }

  /** The sequence of the probe frame awaiting its reply, if any. */
  get probeSeq(): number | undefined {
    return this.#probe?.seq;
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
   * returns undefined when the source has ended. A stopped device samples on: the caller keeps
   * the frame queued (SimDevice.queue) until the device resumes.
   */
  nextData(nowMs: number): Pending | undefined {
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
      const lost = this.pending.get(oldest);
      if (lost && this.#probe?.seq === oldest) this.#probe.dropped = lost;
      this.#forget(oldest);
      this.stats.overflowed++;
      this.#unreportedDrops++;
      if (this.stopped) {
        this.stats.droppedWhileStopped++;
        this.#unreportedWhileStopped++;
      }
    }
    const p: Pending = {
      seq,
      raw,
      sentAt: nowMs,
      timeout: this.#opts.resendMs ?? 500,
      attempts: 1,
      sends: 0,
      step: this.step - 1,
      ...(poison ? { poison } : {}),
    };
    this.pending.set(seq, p);
    this.#sent.set(seq, p);
    return p;
  }

  /**
   * Puts back a frame a PUBACK removed, which the gateway then refused (MQTT): in age order, sent
   * (its timer runs; resent once the device resumes, or after the HELLO a SCHEMA_MISMATCH asks
   * for). The caller no longer counts it as acknowledged.
   */
  #takeBack(p: Pending): void {
    const byAge = (a: Pending, b: Pending): number => (a.step ?? 0) - (b.step ?? 0);
    const all = [...this.pending.values(), p].sort(byAge);
    this.pending.clear();
    for (const q of all) this.pending.set(q.seq, q);
    const sent = [...this.#sent.values(), p].sort(byAge);
    this.#sent.clear();
    for (const q of sent) this.#sent.set(q.seq, q);
  }

  /** Removes a frame from RAM (acknowledged, overflowed, refused for good). */
  #forget(seq: number): boolean {
    this.#refusedInFlight.delete(seq);
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
    // A stopped device queues every sample while its ring drops the oldest: keep the FIFO's
    // stale entries bounded (firstQueued() is not called while stopped).
    if (this.#fifo.length - this.#head > 2 * this.#queued.size + 4096) {
      this.#fifo = this.#fifo.slice(this.#head).filter((q) => this.#queued.get(q.seq) === q);
      this.#head = 0;
    }
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

  /**
   * An ACK frame (serial): removes the frames it names. Stopped, an ACK naming the probe frame
   * means the device was registered (again): it resumes (PROTOCOL.md, "A stopped device"), even
   * if its ring dropped that frame meanwhile.
   */
  onAck(ack: AckFrame, nowMs: number = Date.now()): void {
    const probe = this.#probe;
    if (this.stopped && probe && (probe.seq - ack.firstSeq) >>> 0 < ack.count) this.#resume(nowMs, probe);
    this.#ack(ack.firstSeq, ack.count);
  }

  /**
   * An implicit acknowledgement of one DATA frame (an MQTT PUBACK: the embedded broker sends it
   * once the frame is durable). The gateway PUBACKs refused frames too and their NACK may arrive
   * after the PUBACK: so a stopped device keeps the frame (a gateway that refuses the device
   * stores nothing of it), the PUBACK of the probe frame resumes it only when no NACK
   * UNKNOWN_DEVICE / REVOKED_DEVICE follows within `resendMs` ({@link tick}), and a running
   * device takes back a frame whose PUBACK any NACK outside the withhold set follows within
   * `resendMs` ({@link onNack}).
   */
  onDelivered(seq: number, nowMs: number = Date.now()): void {
    if (this.stopped) {
      if (this.#probe?.seq === seq) this.#probe.pubackAt ??= nowMs;
      return;
    }
    this.settle(nowMs);
    // NACKed before its PUBACK arrived (a SCHEMA_MISMATCH, say): the frame stays pending.
    if (this.#refusedInFlight.delete(seq)) return;
    this.#ack(seq, 1, nowMs);
  }

  /**
   * PUBACKs that no NACK followed within `resendMs` stand: their frames are reported to `onAcked`
   * (all of them with `all`: the end of the run, a reboot, a resume).
   */
  settle(nowMs: number, all = false): void {
    for (const [k, v] of this.#recentlyDelivered) {
      if (!all && nowMs - v.at < this.#replyTimeoutMs) break;
      this.#recentlyDelivered.delete(k);
      this.#opts.onAcked?.(v.p.raw);
    }
  }

  /** True while a PUBACK is younger than `resendMs`: a NACK may still take its frame back. */
  awaitingRefusal(nowMs: number): boolean {
    for (const v of this.#recentlyDelivered.values()) return nowMs - v.at < this.#replyTimeoutMs;
    return false;
  }

  /** `p` went on the link intact (the simulator's one path for DATA copies). */
  transmitted(p: Pending): void {
    p.sends++;
    this.#refusedInFlight.delete(p.seq);
  }

  /** Removes `first .. first+count-1` (mod 2^32) from RAM; `implicitAt`: by a PUBACK at that time. */
  #ack(first: number, count: number, implicitAt?: number): void {
    for (let i = 0; i < count; i++) {
      const seq = (first + i) >>> 0;
      const p = this.pending.get(seq);
      if (p) {
        this.#forget(seq);
        // Over MQTT a refused frame is PUBACKed too (3.1.1 has no negative PUBACK): the PUBACK
        // stands only once no NACK followed it within `resendMs` (settle). A frame the simulator
        // knows the gateway refuses (its ground truth, `poison`) is booked abandoned at once:
        // through an external broker the PUBACK is the broker's and the gateway's NACK may come
        // later than that window.
        if (p.poison) {
          this.#abandon(seq);
          continue;
        }
        this.stats.acked++;
        if (implicitAt !== undefined) this.#recentlyDelivered.set(seq, { p, at: implicitAt });
        else this.#opts.onAcked?.(p.raw);
      } else if (!this.#abandoned.has(seq)) this.stats.dupAcks++;
    }
  }

  /**
   * Stopped: whether a probe is due now (its interval passed, a frame is kept to probe with, no
   * BUSY hold), and then the frame to probe with: the oldest kept one. After sending HELLO and
   * it, the caller reports it with {@link probeSent}.
   */
  probeFrame(nowMs: number): Pending | undefined {
    if (!this.stopped || nowMs < this.#nextProbeAt || this.held(nowMs)) return undefined;
    return this.pending.values().next().value;
  }

  /** The probe went out (HELLO, then `p`): its reply decides; the next one is an interval away. */
  probeSent(p: Pending, nowMs: number): void {
    this.#probe = { seq: p.seq, sentAt: nowMs };
    this.#nextProbeAt = nowMs + this.#probeIntervalMs;
    this.stats.probes++;
    p.offered = true;
    if (this.#queued.has(p.seq)) this.markSent(p, nowMs);
    else p.sentAt = nowMs;
  }

  /**
   * True while a probe's reply may still come: within `resendMs` of sending it, or (MQTT) its
   * frame was PUBACKed and {@link tick} has not decided yet. The drain waits for it, not for the
   * next probe.
   */
  probeOutstanding(nowMs: number): boolean {
    const pr = this.#probe;
    return (
      this.stopped &&
      pr !== undefined &&
      (pr.pubackAt !== undefined || nowMs - pr.sentAt < this.#replyTimeoutMs)
    );
  }

  /**
   * MQTT: a stopped device whose probe frame was PUBACKed `resendMs` ago, with no NACK
   * UNKNOWN_DEVICE / REVOKED_DEVICE since, was registered: it resumes and the probe frame counts
   * as acknowledged. Returns true when it resumed.
   */
  tick(nowMs: number): boolean {
    const pr = this.#probe;
    if (!this.stopped || pr?.pubackAt === undefined || nowMs - pr.pubackAt < this.#replyTimeoutMs)
      return false;
    this.#resume(nowMs, pr);
    this.#ack(pr.seq, 1);
    return true;
  }

  /**
   * Resumes a stopped device whose probe was acknowledged: its kept frames go out now (the ones
   * sent before at once). If the full ring dropped the probe frame while its reply was on the
   * way, the gateway stored it after all: it counts as acknowledged, not as dropped.
   */
  #resume(nowMs: number, probe: Probe): void {
    const lost = probe.dropped;
    if (lost && !this.pending.has(lost.seq)) {
      this.stats.overflowed--;
      this.stats.droppedWhileStopped--;
      this.#unreportedDrops--;
      this.#unreportedWhileStopped--;
      this.pending.set(lost.seq, lost); // acknowledged by the caller's #ack, right after this
    }
    this.stopped = false;
    this.#probe = undefined;
    this.#nextProbeAt = Infinity;
    this.settle(nowMs, true);
    this.#lastOverflowReportAt = -Infinity; // what the ring dropped while stopped is reported at once
    this.stats.resumes++;
    for (const p of this.#sent.values()) p.sentAt = nowMs - p.timeout;
  }

  /**
   * Frames the full ring dropped and not yet reported (0 while stopped: a stopped device sends no
   * ERROR, PROTOCOL.md, "A stopped device").
   */
  get unreportedDrops(): number {
    return this.stopped ? 0 : this.#unreportedDrops;
  }

  /**
   * Whether ERROR code 2 ({@link overflowError}) should go out now. The rule, so that an overflow
   * cannot flood the link: drops are batched, at most one report per device per
   * {@link OVERFLOW_REPORT_INTERVAL_MS}, naming every frame dropped since the previous one; the
   * first drop after a quiet interval is reported at once (the next pass of the send loop), and so
   * is what the ring dropped while stopped, right after the resume. `final` (the drain: no frame is
   * generated any more, so none can drop) reports what is left without waiting for the interval.
   * A BUSY hold does not delay it: ERROR frames may be sent during one (PROTOCOL.md, NACK).
   */
  overflowReportDue(nowMs: number, final = false): boolean {
    if (this.unreportedDrops === 0) return false;
    return final || nowMs - this.#lastOverflowReportAt >= OVERFLOW_REPORT_INTERVAL_MS;
  }

  /**
   * ERROR code 2, buffer overflow (PROTOCOL.md, ERROR: device_id, code, message), naming how many
   * frames the full ring dropped since the last report (and how many of them while the device was
   * stopped); call {@link dropsReported} once sent.
   */
  overflowError(): Buffer {
    const n = this.#unreportedDrops;
    const stopped = this.#unreportedWhileStopped;
    const message =
      stopped === n
        ? `resend ring full while stopped: ${n} oldest frames dropped`
        : `resend ring full: ${n} oldest frames dropped${stopped > 0 ? `, ${stopped} of them while stopped` : ""}`;
    return encodeFrame({ type: FrameType.Error, deviceId: this.id, code: 2, message });
  }

  /** The report went out at `nowMs`: the count restarts, the next report is an interval away. */
  dropsReported(nowMs: number): void {
    this.#unreportedDrops = 0;
    this.#unreportedWhileStopped = 0;
    this.#lastOverflowReportAt = nowMs;
    this.stats.overflowReports++;
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

  /**
   * Applies a NACK as the NACK table says (PROTOCOL.md), whether or not an MQTT PUBACK of the frame
   * came first; returns true when the frame should be resent now (after a HELLO).
   */
  onNack(nack: NackFrame, nowMs: number = Date.now()): boolean {
    const name = NACK_NAMES[nack.reason] ?? `REASON_${nack.reason}`;
    this.stats.nacked[name] = (this.stats.nacked[name] ?? 0) + 1;
    // Over MQTT a frame NACKed with a reason outside the withhold set was PUBACKed first: if that
    // PUBACK came, the frame counted as acknowledged. Not stored: it is no longer.
    let tookBack: Pending | undefined;
    const back = WITHHOLD_PUBACK_NACKS.has(nack.reason) ? undefined : this.#recentlyDelivered.get(nack.seq);
    if (back && nowMs - back.at < this.#replyTimeoutMs && !this.pending.has(nack.seq)) {
      this.#recentlyDelivered.delete(nack.seq);
      this.stats.acked--;
      tookBack = back.p;
    } else if (this.pending.has(nack.seq)) this.#refusedInFlight.add(nack.seq);
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
      // Whatever the seq (a refused HELLO is NACKed with seq 0): stopped, or still stopped. A
      // probe in flight was answered: the device stays stopped until the next one.
      if (!this.stopped) {
        this.stopped = true;
        this.#nextProbeAt = this.#probeIntervalMs > 0 ? nowMs + this.#probeIntervalMs : Infinity;
      }
      this.#probe = undefined;
      // Kept: one taken back from its PUBACK goes back into the ring.
      if (tookBack) this.#takeBack(tookBack);
      // Refused, not stored: its next copy is not a duplicate at the gateway.
      const p = this.pending.get(nack.seq);
      if (p) p.sends = 0;
      return false;
    }
    if (RETRYABLE_NACKS.has(nack.reason)) {
      if (tookBack) this.#takeBack(tookBack);
      if (nack.reason !== NackReason.SCHEMA_MISMATCH) return false;
      // Refused, not stored: its next copy is not a duplicate at the gateway.
      const p = this.pending.get(nack.seq);
      if (!p) return false;
      p.sends = 0;
      // PROTOCOL.md revision 1.3: the SCHEMA_MISMATCH_MAX-th one drops it (a HELLO cannot fix it;
      // never stored, so no acknowledged frame is lost).
      p.schemaMismatches = (p.schemaMismatches ?? 0) + 1;
      if (p.schemaMismatches >= SCHEMA_MISMATCH_MAX) {
        this.#forget(nack.seq);
        this.#abandon(nack.seq);
        return false;
      }
      // HELLO, then the resend; a stopped device keeps the frame but sends nothing.
      return !this.stopped;
    }
    // Every other reason (ABSURD_TIMESTAMP, SEQ_OUT_OF_RANGE, NON_FINITE, unknown): drop it. This
    // device's clock is its own (a constant skew, never set from ACKs' gateway_time_us), so there
    // is no ACK-set clock to forget; it does not start a new boot on SEQ_OUT_OF_RANGE (its counter
    // never skips: such a NACK means the gateway's state, not the device's counter, is off).
    if (tookBack || this.#forget(nack.seq)) this.#abandon(nack.seq);
    return false;
  }

  /**
   * Simulates an MCU reboot: a new boot id (the last one plus one, mod 2^32), the sequence restarts at 0 and the unacknowledged
   * frames in the RAM ring are lost (counted in `lostAtReboot`), a stopped device's kept frames
   * included. A reset also ends the stop ("A device that never probes stays stopped until it is
   * reset", PROTOCOL.md, "A stopped device") and a BUSY hold (RAM state): the device starts over
   * as a fresh one, HELLO then DATA; a gateway that still refuses it NACKs that HELLO and it stops
   * again ({@link onNack}). Returns the lost frames.
   */
  reboot(): Pending[] {
    this.bootId = (this.bootId + 1) >>> 0;
    this.bootStep = this.step;
    const lost = [...this.pending.values()];
    this.stats.lostAtReboot += lost.length;
    this.pending.clear();
    this.#sent.clear();
    this.#queued.clear();
    this.#fifo = [];
    this.#head = 0;
    this.#abandoned.clear();
    this.#refusedInFlight.clear();
    // RAM: a probe in flight and the count of frames dropped while stopped are lost too; PUBACKs
    // still awaiting a possible NACK stand (the new boot could not match that NACK).
    this.#probe = undefined;
    this.#unreportedDrops = 0;
    this.#unreportedWhileStopped = 0;
    this.#lastOverflowReportAt = -Infinity;
    this.settle(0, true);
    this.stopped = false;
    this.#nextProbeAt = Infinity;
    this.heldUntil = 0;
    return lost;
  }
}
