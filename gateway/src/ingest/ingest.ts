/**
 * Ingest: validate decoded frames, track per-device sequence state, hand DATA frames to the
 * durable sink and tell the source what to answer (ACK only after the sink resolved, NACK
 * with a reason, or nothing for frames that cannot be trusted). Never throws on input.
 * A DATA frame with NaN/±Inf values is well-formed (protocol revision 1.2): it is stored as sent
 * and acknowledged, its bad channels marked (`DataFrame.nonFinite`, counted per device and
 * channel); the data-quality stage of the inference loop decides what they cost a prediction.
 */
import type { IngestReply } from "./reply.ts";
import { VigilError } from "../core/errors.ts";
import type { FrameError } from "../protocol/errors.ts";
import {
  deviceIdHex,
  FrameType,
  NackReason,
  type DataFrame,
  type NackReasonCode,
} from "../protocol/frame.ts";
import type { DecodedFrame } from "../protocol/stream-decoder.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { OPEN_ADMISSION, type DeviceAdmission } from "../core/admission.ts";
import { IngestCounters, type DeviceState, type SourceKind } from "./counters.ts";
import { IngestRejectError, type IngestRejectReason } from "./errors.ts";
import type { AppendOutcome, FrameRecord, FrameSink } from "../core/records.ts";
import { silentLogger, type Logger } from "../core/log.ts";

export interface IngestOptions {
  sink: FrameSink;
  /** Default: the system clock. */
  clock?: Clock;
  /**
   * Who may send: asked for every HELLO and DATA frame (O(1)). Default: every device
   * ({@link OPEN_ADMISSION}); runtime.ts plugs in the configured lists or the registry cache.
   */
  admission?: DeviceAdmission;
  /** Largest accepted distance between device and gateway clocks, µs. Default 24 h. */
  maxSkewUs?: number;
  /**
   * Whether the gateway clock is known good (clock-trust.ts), asked once per DATA frame (keep it
   * cheap). While it returns false, every stored frame is marked `clockUnverified` in its record
   * and counted in `counters.clockUnverified`, and frames beyond `maxSkewUs` are accepted instead
   * of NACKed ABSURD_TIMESTAMP. Default: always trusted.
   */
  clockTrusted?: () => boolean;
  counters?: IngestCounters;
  /**
   * The stored bytes of (device, extended seq), or undefined when not stored (or pruned): the slow
   * path for sequences older than the in-memory window, and the check that a frame under a
   * sequence number already stored is a resend (the stored bytes) and not a new boot whose HELLO
   * was lost (other bytes: NACK SCHEMA_MISMATCH, so the device sends HELLO and resends, instead of
   * being acknowledged unstored; PROTOCOL.md, "A lost HELLO"). Default: none (the sequence number
   * alone decides, and older sequences are treated as new: the store deduplicates).
   */
  storedRaw?: (deviceId: number, seq: number) => Promise<Uint8Array | undefined>;
  /**
   * Called once per newly stored DATA frame, after it is durable and before the sender is
   * acknowledged (the inference loop and the batcher subscribe here). Must not throw.
   */
  onStored?: (record: FrameRecord, frame: DataFrame) => void;
  /** Device ERROR frames are logged here (warn), at the 1st, 2nd, 4th, 8th, … per device and code. */
  logger?: Logger;
  /**
   * Frames handed to the sink and not yet durable, above which ingest pushes back: serial DATA
   * frames are NACKed BUSY (the device keeps them and resends after `busyRetryMs`), and
   * pressure listeners (the embedded broker) stop reading their clients' sockets until the
   * backlog is below half. Default 2,000: about 100 ms of the store at 20,000 frames/s. With
   * 20,000, an overload of 20,250 frames/s for 40 s (bench e2e --overload-at) queued seconds of
   * frames (p99 5 s), the devices' 2-s resend timers expired 2.5 M times, and 10,246 frames/s
   * were stored; with 2,000 the same load was stored at 20,160/s with no resend, p99 0.32 s.
   */
  maxPending?: number;
  /** `retryAfterMs` of BUSY NACKs. Default 250. */
  busyRetryMs?: number;
}

export type { IngestReply } from "./reply.ts";

/** What a device's HELLO announced (PROTOCOL.md, HELLO): kept across restarts by hello-memory.ts. */
export interface DeviceSchema {
  bootId: number;
  profile: string;
  /** Channel names in frame order. */
  channelNames: readonly string[];
  /** "major.minor.patch". */
  firmware: string;
}

const NONE: IngestReply = { kind: "none" };
const DAY_US = 86_400_000_000;

const NACK_FOR: Record<IngestRejectReason, NackReasonCode | undefined> = {
  UNKNOWN_DEVICE: NackReason.UNKNOWN_DEVICE,
  REVOKED_DEVICE: NackReason.REVOKED_DEVICE,
  SCHEMA_MISMATCH: NackReason.SCHEMA_MISMATCH,
  ABSURD_TIMESTAMP: NackReason.ABSURD_TIMESTAMP,
  STORE_UNAVAILABLE: NackReason.STORE_UNAVAILABLE,
  SEQ_OUT_OF_RANGE: NackReason.SEQ_OUT_OF_RANGE,
  // The device's action for SCHEMA_MISMATCH is "send HELLO, then resend it": what a lost HELLO
  // needs, with no new code for firmware to learn.
  SEQ_REUSED: NackReason.SCHEMA_MISMATCH,
  UNEXPECTED_TYPE: undefined,
};

export class Ingest {
  readonly counters: IngestCounters;
  readonly #sink: FrameSink;
  readonly #clock: Clock;
  readonly #maxSkewUs: number;
  readonly #clockTrusted: () => boolean;
  #admission: DeviceAdmission;
  readonly #storedRaw: ((d: number, s: number) => Promise<Uint8Array | undefined>) | undefined;
  readonly #log: Logger;
  readonly #observers: Array<(record: FrameRecord, frame: DataFrame) => void> = [];
  readonly #unstoredObservers: Array<(record: FrameRecord, frame: DataFrame) => void> = [];
  readonly #pressureListeners: Array<(busy: boolean) => void> = [];
  readonly #helloObservers: Array<(deviceId: number, schema: DeviceSchema) => void> = [];
  readonly #maxPending: number;
  readonly #busyRetryMs: number;
  /** Frames handed to the sink, not yet settled. */
  #pending = 0;
  #busy = false;

  constructor(opts: IngestOptions) {
    this.#sink = opts.sink;
    this.#clock = opts.clock ?? systemClock;
    this.#maxSkewUs = opts.maxSkewUs ?? DAY_US;
    this.#clockTrusted = opts.clockTrusted ?? (() => true);
    this.#admission = opts.admission ?? OPEN_ADMISSION;
    this.counters = opts.counters ?? new IngestCounters();
    this.#storedRaw = opts.storedRaw;
    this.#log = opts.logger ?? silentLogger;
    if (opts.onStored) this.#observers.push(opts.onStored);
    this.#maxPending = opts.maxPending ?? 2_000;
    this.#busyRetryMs = opts.busyRetryMs ?? 250;
    if (!Number.isInteger(this.#maxPending) || this.#maxPending < 1)
      throw new RangeError(`maxPending must be a positive integer, got ${this.#maxPending}`);
  }

  /** Frames handed to the store and not yet durable. */
  get pending(): number {
    return this.#pending;
  }

  /** True while the backlog is above maxPending (until it falls below half of it). */
  get busy(): boolean {
    return this.#busy;
  }

  /** Called with true when ingest becomes busy and false when the backlog has drained to half. */
  onPressure(fn: (busy: boolean) => void): void {
    this.#pressureListeners.push(fn);
  }

  /** A frame handed to the sink at `sinceUs` has its verdict. */
  #settle(sinceUs: number): void {
    this.counters.durableLatency.record(this.#clock.nowUs() - sinceUs);
    this.#pending--;
    if (this.#busy && this.#pending <= this.#maxPending / 2) {
      this.#busy = false;
      for (const fn of this.#pressureListeners) fn(false);
    }
  }

  /**
   * Adds an observer of HELLOs ingest accepted (an admitted device's schema: profile, channel
   * names, firmware, boot), called after the device's state took it. The runtime keeps the last one
   * of each device in the store (hello-memory.ts), so a restarted gateway knows the device's profile
   * before the device's next HELLO.
   */
  onHello(fn: (deviceId: number, schema: DeviceSchema) => void): void {
    this.#helloObservers.push(fn);
  }

  /**
   * Gives a device the schema of its last HELLO before this start (hello-memory.ts): its profile
   * (which model serves it), channel names and count (checked against its DATA frames, as after a
   * HELLO) and firmware. Not its boot: the sequence state is restored from the store's own record.
   */
  restoreSchema(deviceId: number, schema: DeviceSchema): void {
    const d = this.counters.device(deviceId);
    if (d.profile !== undefined) return; // a HELLO of this run came first
    d.profile = schema.profile;
    d.channelNames = [...schema.channelNames];
    d.channels = schema.channelNames.length;
    d.firmware = schema.firmware;
  }

  /** Adds an observer of newly stored DATA frames (see IngestOptions.onStored). */
  onStored(fn: (record: FrameRecord, frame: DataFrame) => void): void {
    this.#observers.push(fn);
  }

  /**
   * Adds an observer of valid DATA frames the store refused (disk full, I/O error): they are
   * not acknowledged, so the sender keeps and resends them, but inference can still see them
   * and alerts keep flowing while the store is down.
   */
  onUnstored(fn: (record: FrameRecord, frame: DataFrame) => void): void {
    this.#unstoredObservers.push(fn);
  }

  /** Replaces the admission (tests; the runtime passes it at construction). */
  setAdmission(admission: DeviceAdmission): void {
    this.#admission = admission;
  }

  /**
   * Counts a frame that could not be decoded. It gets no reply: its device id and sequence
   * cannot be trusted (PROTOCOL.md, "Replies and silence"). NaN/±Inf values are not a decode
   * error since revision 1.2 (the frame is stored and acknowledged, see {@link handle}).
   */
  rejectUndecodable(err: FrameError, source: SourceKind): IngestReply {
    this.counters.bySource[source].frames++;
    this.counters.reject(err.reason, source, err.frameRef?.deviceId);
    return NONE;
  }

  /**
   * Handles one decoded frame. DATA frames resolve once the sink made them durable; the
   * returned reply is what the source must send (serial ACK/NACK frame, MQTT PUBACK/NACK).
   */
  handle(decoded: DecodedFrame, source: SourceKind): IngestReply | Promise<IngestReply> {
    const f = decoded.frame;
    this.counters.bySource[source].frames++;
    switch (f.type) {
      case FrameType.Data:
        return this.#data(f, decoded.raw, source);
      case FrameType.Hello: {
        const refusal = this.#access(f.deviceId);
        if (refusal) return this.#refuse(refusal, f.deviceId, 0, source);
        const d = this.counters.device(f.deviceId);
        d.channels = f.channels.length;
        d.channelNames = f.channels.map((c) => c.name);
        d.profile = f.profile;
        d.bootId = f.bootId;
        // Asked about a pruned sequence number: a HELLO of the current boot says it was a resend.
        const sameBoot = d.seq.boot === undefined || d.seq.boot.id === f.bootId;
        if (!sameBoot) d.prunedSeqs = 0;
        else if (d.prunedSeqs === 1) d.prunedSeqs = 2;
        d.seq.hello(f.bootId);
        d.firmware = `${f.firmware.major}.${f.firmware.minor}.${f.firmware.patch}`;
        this.counters.hellos++;
        if (this.#helloObservers.length > 0) {
          const schema: DeviceSchema = {
            bootId: f.bootId,
            profile: f.profile,
            channelNames: d.channelNames,
            firmware: d.firmware,
          };
          for (const fn of this.#helloObservers) fn(f.deviceId, schema);
        }
        return NONE;
      }
      case FrameType.Error: {
        // A device's fault report (sensor fault, frames lost on the device): counted by device
        // and code; a refused device's reports count in the total only (no state for it).
        if (this.#access(f.deviceId)) {
          this.counters.deviceErrors++;
          return NONE;
        }
        const n = this.counters.deviceError(f.deviceId, f.code);
        if ((n & (n - 1)) === 0)
          this.#log.warn(
            { device: deviceIdHex(f.deviceId), code: f.code, count: n, message: f.message },
            "device reported an error",
          );
        return NONE;
      }
      default:
        // ACK/NACK flow gateway → device only.
        this.counters.reject("UNEXPECTED_TYPE", source, f.deviceId);
        return NONE;
    }
  }

  #access(deviceId: number): IngestRejectError | undefined {
    const v = this.#admission.admit(deviceId);
    if (v === "ok") return undefined;
    if (v === "revoked")
      return new IngestRejectError(
        "REVOKED_DEVICE",
        `device ${deviceIdHex(deviceId)} is suspended or revoked`,
      );
    return new IngestRejectError("UNKNOWN_DEVICE", `device ${deviceIdHex(deviceId)} is not registered`);
  }

  #refuse(err: IngestRejectError, deviceId: number, seq: number, source: SourceKind): IngestReply {
    this.counters.reject(err.reason, source, deviceId);
    const reason = NACK_FOR[err.reason];
    return reason === undefined ? NONE : { kind: "nack", deviceId, seq, reason };
  }

  /**
   * Semantic checks of a DATA frame; returns the refusal or undefined. `clockTrusted`: whether the
   * gateway clock can judge the timestamp (default: ask the `clockTrusted` option).
   */
  validate(
    f: DataFrame,
    d: DeviceState | undefined,
    nowUs: number,
    clockTrusted: boolean = this.#clockTrusted(),
  ): IngestRejectError | undefined {
    const access = this.#access(f.deviceId);
    if (access) return access;
    if (d?.channels !== undefined && d.channels !== f.values.length)
      return new IngestRejectError(
        "SCHEMA_MISMATCH",
        `device ${deviceIdHex(f.deviceId)} announced ${d.channels} channels, frame has ${f.values.length}`,
      );
    if (f.timestampUs !== 0 && Math.abs(f.timestampUs - nowUs) > this.#maxSkewUs) {
      // Accepted (and the record marked, see #data) while the gateway's own clock is not known
      // good (no RTC, NTP not synced).
      if (!clockTrusted) return undefined;
      return new IngestRejectError(
        "ABSURD_TIMESTAMP",
        `timestamp ${f.timestampUs} µs is too far from the gateway clock`,
      );
    }
    return undefined;
  }

  #data(f: DataFrame, raw: Buffer, source: SourceKind): IngestReply | Promise<IngestReply> {
    const nowUs = this.#clock.nowUs();
    const known = this.counters.devices.get(f.deviceId);
    const clockTrusted = this.#clockTrusted();
    const refusal = this.validate(f, known, nowUs, clockTrusted);
    if (refusal) return this.#refuse(refusal, f.deviceId, f.seq, source);
    const d = known ?? this.counters.device(f.deviceId);
    d.noteArrival(nowUs);
    const ext = d.seq.extend(f.seq);
    if (ext === undefined)
      return this.#refuse(
        new IngestRejectError(
          "SEQ_OUT_OF_RANGE",
          `device ${deviceIdHex(f.deviceId)} seq ${f.seq} is more than 2^24 from its highest sequence of this boot`,
        ),
        f.deviceId,
        f.seq,
        source,
      );
    const ack: IngestReply = { kind: "ack", deviceId: f.deviceId, seq: f.seq };
    const inflight = d.inflight.get(ext);
    if (inflight) {
      if (this.#storedRaw && !raw.equals(inflight.raw)) return this.#reused(f, source, "reused");
      // The same frame is being stored right now: the copy gets the original's verdict once it is
      // known. An ACK only when the original is durable; a refused original (the store failed,
      // the bytes reused a stored seq) refuses the copy too, counted under the same reason, so a
      // device that resent during a sync that then failed does not drop a frame never stored.
      return inflight.done.then((r) => {
        if (r.kind === "ack") {
          this.#countDuplicate(d);
          return ack;
        }
        // An original that passed validation is refused only by the store or as a reused seq.
        if (r.kind === "nack")
          this.counters.reject(
            r.reason === NackReason.STORE_UNAVAILABLE ? "STORE_UNAVAILABLE" : "SEQ_REUSED",
            source,
            f.deviceId,
          );
        return r;
      });
    }
    const verdict = d.seq.classify(ext);
    if (verdict === "duplicate") {
      if (this.#storedRaw) return this.#duplicate(f, raw, ext, d, source, ack);
      this.#countDuplicate(d);
      return ack;
    }
    if (this.#busy && source === "serial") {
      // Back-pressure on a serial line: the device keeps the frame and resends it later
      // (PROTOCOL.md, NACK BUSY). MQTT senders are slowed by not reading their sockets.
      this.counters.shed("BUSY", source);
      return {
        kind: "nack",
        deviceId: f.deviceId,
        seq: f.seq,
        reason: NackReason.BUSY,
        retryAfterMs: this.#busyRetryMs,
      };
    }
    const record: FrameRecord = {
      deviceId: f.deviceId,
      seq: ext,
      receivedUs: nowUs,
      timestampUs: f.timestampUs || nowUs,
      raw,
      ...(d.seq.boot ? { boot: d.seq.boot } : {}),
      ...(clockTrusted ? {} : { clockUnverified: true as const }),
    };
    d.seq.issue(ext);
    if (++this.#pending >= this.#maxPending && !this.#busy) {
      this.#busy = true;
      for (const fn of this.#pressureListeners) fn(true);
    }
    // "resend" / "reused": the bytes were compared with the stored frame's (#storedRaw).
    const stored: Promise<AppendOutcome | "resend" | "reused" | "pruned"> =
      verdict === "old" && this.#storedRaw
        ? this.#storedRaw(f.deviceId, ext).then((had) =>
            had === undefined ? this.#sink.append(record) : this.#sameOrReused(had, raw, d),
          )
        : this.#sink.append(record);
    const done = stored.then(
      (outcome): IngestReply | Promise<IngestReply> => {
        this.#settle(nowUs);
        d.inflight.delete(ext);
        if (outcome === "reused" || outcome === "pruned") return this.#reused(f, source, outcome);
        // The store's own de-duplication (a copy queued or indexed): compare the bytes too.
        if (outcome === "duplicate" && this.#storedRaw) return this.#duplicate(f, raw, ext, d, source, ack);
        if (outcome === "duplicate" || outcome === "resend") this.#countDuplicate(d);
        else {
          d.prunedSeqs = 0;
          d.seq.record(ext);
          this.counters.accepted++;
          if (record.clockUnverified) this.counters.clockUnverified++;
          if (f.nonFinite !== undefined) this.#countNonFinite(d, f.nonFinite);
          for (const fn of this.#observers) fn(record, f);
        }
        return ack;
      },
      (err: unknown) => {
        this.#settle(nowUs);
        d.inflight.delete(ext);
        for (const fn of this.#unstoredObservers) fn(record, f);
        const e =
          err instanceof VigilError
            ? new IngestRejectError("STORE_UNAVAILABLE", err.shortMessage, { cause: err })
            : new IngestRejectError("STORE_UNAVAILABLE", "store failed", { cause: err });
        return this.#refuse(e, f.deviceId, f.seq, source);
      },
    );
    d.inflight.set(ext, { done, raw });
    return done;
  }

  /** A copy of a stored frame (bitmap verdict): ACK when the bytes are the stored ones. */
  async #duplicate(
    f: DataFrame,
    raw: Buffer,
    ext: number,
    d: DeviceState,
    source: SourceKind,
    ack: IngestReply,
  ): Promise<IngestReply> {
    let had: Uint8Array | undefined;
    try {
      had = await this.#storedRaw!(f.deviceId, ext);
    } catch (err) {
      return this.#refuse(
        new IngestRejectError("STORE_UNAVAILABLE", "store read failed", { cause: err }),
        f.deviceId,
        f.seq,
        source,
      );
    }
    const same = this.#sameOrReused(had, raw, d);
    if (same !== "resend") return this.#reused(f, source, same);
    this.#countDuplicate(d);
    return ack;
  }

  /**
   * Byte-equal: a resend; other bytes: a reused sequence number. Pruned (undefined): the bytes
   * cannot be compared, and an ACK of a new boot's frame filed under its previous boot would lose
   * it (a lost HELLO after a boot that outlived the retention), so the first such frame is NACKed
   * SCHEMA_MISMATCH ("pruned"); once the device's HELLO repeats its current boot, they are resends.
   */
  #sameOrReused(had: Uint8Array | undefined, raw: Buffer, d: DeviceState): "resend" | "reused" | "pruned" {
    if (had !== undefined) return raw.equals(had) ? "resend" : "reused";
    if (d.prunedSeqs === 2) return "resend";
    d.prunedSeqs = 1;
    return "pruned";
  }

  #reused(f: DataFrame, source: SourceKind, why: "reused" | "pruned"): IngestReply {
    const dev = deviceIdHex(f.deviceId);
    return this.#refuse(
      new IngestRejectError(
        "SEQ_REUSED",
        why === "reused"
          ? `device ${dev} seq ${f.seq} is stored with other bytes: a new boot without its HELLO`
          : `device ${dev} seq ${f.seq} was stored and pruned since: a resend, or a new boot without its HELLO; its HELLO tells`,
      ),
      f.deviceId,
      f.seq,
      source,
    );
  }

  /** A stored frame with NaN/±Inf values: what the device sent, kept and marked (bit i: channel i). */
  #countNonFinite(d: DeviceState, mask: number): void {
    this.counters.nonFiniteFrames++;
    d.nonFiniteFrames++;
    for (let i = 0; mask !== 0; i++, mask >>>= 1) {
      if ((mask & 1) === 0) continue;
      this.counters.nonFiniteValues++;
      while (d.nonFiniteByChannel.length <= i) d.nonFiniteByChannel.push(0);
      d.nonFiniteByChannel[i]!++;
    }
  }

  #countDuplicate(d: DeviceState): void {
    d.seq.duplicates++;
    this.counters.duplicates++;
  }
}
