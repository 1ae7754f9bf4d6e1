/**
 * The gateway half of a firmware transfer to one device (hardware/PROTOCOL.md, "Firmware
 * update", "Gateway rules"), as a transport-agnostic state machine: frames go out through a
 * `send` callback, device frames come in through `handle()`, time through injected timers.
 *
 *   offering ──FW_STATUS RECEIVING──▶ transferring ──FW_STATUS READY/TESTING──▶ installing
 *       │                                  │                                       │
 *       └─ 5 offers unanswered: NO_RESPONSE └─ 8 rewinds without progress           └─ INSTALLED: done
 *          (interrupted)                       : TOO_MANY_RETRIES (interrupted)        REVERTED / timeout: failed
 *
 * `interrupted` (the device stopped answering) differs from `failed`: the next session resumes it.
 *
 * Chunks go out go-back-N within the device's window; acknowledgements are cumulative; the
 * device is authoritative for the offset, so resuming after a disconnect or a gateway restart
 * is just offering again.
 */
import {
  FrameType,
  FwAbortReason,
  FwAckStatus,
  FwReason,
  FwResult,
  FwState,
  FW_MAX_CHUNK,
  FW_MAX_WINDOW,
  type FirmwareFrame,
  type FirmwareVersion,
  type Frame,
  type FwChunkAckFrame,
  type FwReasonName,
  type FwStatusFrame,
} from "../../protocol/frame.ts";
import { FirmwareImageError } from "../../protocol/errors.ts";
import { FirmwareUpdateError } from "./errors.ts";
import {
  compareVersions,
  parseFirmwareImage,
  versionText,
  type FirmwareImageInfo,
} from "../../protocol/firmware-image.ts";
import type { FirmwarePhase, FirmwareProgress, FirmwareProgressStore } from "./progress.ts";

/** Time, injected so tests can drive it (defaults: the global timers and Date.now). */
export interface FirmwareTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const systemTimers: FirmwareTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
};

export interface FirmwareSessionOptions {
  deviceId: number;
  /** The release id (1..2^32−1) the device files the transfer under. */
  releaseId: number;
  /** The whole image (32-byte header + firmware); the offer's version, counter, size and hash come from it. */
  image: Uint8Array;
  /** Sends one frame to the device (the caller encodes it: encodeFrame, then COBS on serial). */
  send: (frame: FirmwareFrame) => void;
  timers?: FirmwareTimers;
  /** Where the transfer's phase is persisted (for a gateway restart). Default: not persisted. */
  progressStore?: FirmwareProgressStore;
  /** Called on every phase change and every acknowledged progress step. Must not throw. */
  onProgress?: (p: FirmwareProgressEvent) => void;
  /** Wait for FW_STATUS after an offer, ms. Default 2000. */
  offerTimeoutMs?: number;
  /** Offers sent before NO_RESPONSE. Default 5. */
  maxOffers?: number;
  /** No acknowledgement for this long rewinds to the last acknowledged offset, ms. Default 1500. */
  ackTimeoutMs?: number;
  /** Rewinds in a row without progress before TOO_MANY_RETRIES. Default 8. */
  maxRewinds?: number;
  /** Wait for INSTALLED / REVERTED after the device verified the image, ms. Default 120 000. */
  installTimeoutMs?: number;
  /** Cap on the device's window (chunks in flight). Default 16 (the protocol's maximum). */
  maxWindow?: number;
  /** Persist progress at most every this many acknowledged bytes (phase changes always). Default 16 384. */
  persistEveryBytes?: number;
  /**
   * Send FW_ABORT before the offer: retries a release whose outcome the device already knows
   * (it would otherwise repeat that outcome). Default false.
   */
  restart?: boolean;
}

export interface FirmwareProgressEvent {
  deviceId: number;
  releaseId: number;
  phase: FirmwarePhase;
  ackedOffset: number;
  imageSize: number;
  /** Chunk bytes sent so far, retransmissions included. */
  bytesSent: number;
  rewinds: number;
  /** A progress write failed (the transfer goes on; a restart would not resume it). */
  persistError?: unknown;
}

export interface FirmwareResult {
  deviceId: number;
  releaseId: number;
  /** The version the device announced after installing (equals the image's). */
  firmware: FirmwareVersion;
  imageSize: number;
  /** Chunk bytes sent, retransmissions included. */
  bytesSent: number;
  /** Chunk bytes sent more than once. */
  retransmittedBytes: number;
  offers: number;
  /** Go-back-N rewinds (lost or corrupted chunks, timeouts, device write failures). */
  rewinds: number;
  /** From start() to the device's READY (the transfer itself), ms. */
  transferMs: number;
  /** From start() to INSTALLED, ms. */
  totalMs: number;
}

export class FirmwareSession {
  readonly deviceId: number;
  readonly releaseId: number;
  readonly info: FirmwareImageInfo;
  readonly #image: Uint8Array;
  readonly #o: Required<
    Pick<
      FirmwareSessionOptions,
      | "offerTimeoutMs"
      | "maxOffers"
      | "ackTimeoutMs"
      | "maxRewinds"
      | "installTimeoutMs"
      | "maxWindow"
      | "persistEveryBytes"
    >
  >;
  readonly #send: (f: FirmwareFrame) => void;
  readonly #timers: FirmwareTimers;
  readonly #store: FirmwareProgressStore | undefined;
  readonly #onProgress: ((p: FirmwareProgressEvent) => void) | undefined;
  readonly #restart: boolean;

  #phase: FirmwarePhase = "offering";
  #timer: unknown;
  #installTimer: unknown;
  #offers = 0;
  #window = 1;
  #maxChunk = FW_MAX_CHUNK;
  /** Everything below is acknowledged by the device. */
  #acked = 0;
  /** Next byte to send. */
  #next = 0;
  /** Highest byte ever sent (for counting retransmissions). */
  #highWater = 0;
  /**
   * Highest offset the device ever acknowledged: only an acknowledgement beyond it is progress.
   * Chunks acknowledged again after a rewind (WRITE_FAILED back to a sector start, a power cut)
   * are not, or a device failing one chunk mid-sector would be retried forever.
   */
  #ackedHigh = 0;
  #rewinds = 0;
  #totalRewinds = 0;
  /**
   * Set by every rewind (and by a device-reported offset), cleared by the next OK progress.
   * The serial line is FIFO, so chunks sent before a rewind all reach the device before the
   * first chunk sent after it: their OUT_OF_ORDER answers are stale and ignored until then.
   */
  #awaitingProgress = false;
  #bytesSent = 0;
  #retransmitted = 0;
  #persistedAt = 0;
  #startedMs = 0;
  #readyMs = 0;
  #settled = false;
  #resolve!: (r: FirmwareResult) => void;
  #reject!: (e: FirmwareUpdateError) => void;
  readonly #done: Promise<FirmwareResult>;

  /** Throws FirmwareUpdateError("BAD_IMAGE") for an image that is not a valid Vigil image. */
  constructor(opts: FirmwareSessionOptions) {
    if (!Number.isInteger(opts.releaseId) || opts.releaseId < 1 || opts.releaseId > 0xffff_ffff)
      throw new FirmwareUpdateError("BAD_IMAGE", `releaseId must be 1..2^32-1, got ${opts.releaseId}`);
    if (!Number.isInteger(opts.deviceId) || opts.deviceId < 0 || opts.deviceId > 0xffff_ffff)
      throw new FirmwareUpdateError("BAD_IMAGE", `deviceId must be a u32, got ${opts.deviceId}`);
    this.deviceId = opts.deviceId;
    this.releaseId = opts.releaseId;
    try {
      this.info = parseFirmwareImage(opts.image);
    } catch (e) {
      if (!(e instanceof FirmwareImageError)) throw e;
      throw new FirmwareUpdateError("BAD_IMAGE", e.shortMessage, { cause: e });
    }
    this.#image = opts.image;
    this.#send = opts.send;
    this.#timers = opts.timers ?? systemTimers;
    this.#store = opts.progressStore;
    this.#onProgress = opts.onProgress;
    this.#restart = opts.restart ?? false;
    this.#o = {
      offerTimeoutMs: opts.offerTimeoutMs ?? 2000,
      maxOffers: opts.maxOffers ?? 5,
      ackTimeoutMs: opts.ackTimeoutMs ?? 1500,
      maxRewinds: opts.maxRewinds ?? 8,
      installTimeoutMs: opts.installTimeoutMs ?? 120_000,
      maxWindow: Math.min(opts.maxWindow ?? FW_MAX_WINDOW, FW_MAX_WINDOW),
      persistEveryBytes: opts.persistEveryBytes ?? 16_384,
    };
    this.#done = new Promise<FirmwareResult>((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    // The caller may not await before the first failure; the promise it gets still rejects.
    this.#done.catch(() => undefined);
  }

  get phase(): FirmwarePhase {
    return this.#phase;
  }

  /** Bytes acknowledged by the device. */
  get ackedOffset(): number {
    return this.#acked;
  }

  /**
   * Starts the transfer (FW_ABORT first when `restart`, then FW_OFFER). Resolves on INSTALLED;
   * rejects with a {@link FirmwareUpdateError}. Call once.
   */
  start(): Promise<FirmwareResult> {
    this.#startedMs = this.#timers.now();
    if (this.#restart)
      this.#send({
        type: FrameType.FwAbort,
        deviceId: this.deviceId,
        releaseId: this.releaseId,
        reason: FwAbortReason.OPERATOR,
      });
    this.#persist();
    this.#emit();
    this.#offer();
    return this.#done;
  }

  /**
   * Feeds a frame from the device's link. Returns true when it was an FW_STATUS, or an
   * FW_CHUNK_ACK of this release, from this device (consumed); false otherwise (not for this
   * session: the agent counts a stray firmware reply).
   */
  handle(frame: Frame): boolean {
    if (frame.deviceId !== this.deviceId) return false;
    if (frame.type === FrameType.FwStatus) {
      if (!this.#settled) this.#onStatus(frame);
      return true;
    }
    if (frame.type === FrameType.FwChunkAck && frame.releaseId === this.releaseId) {
      if (!this.#settled) this.#onAck(frame);
      return true;
    }
    return false;
  }

  /** Sends FW_ABORT and fails the session with ABORTED (no-op once settled). */
  abort(reason: number = FwAbortReason.OPERATOR): void {
    if (this.#settled) return;
    this.#send({ type: FrameType.FwAbort, deviceId: this.deviceId, releaseId: this.releaseId, reason });
    this.#fail(
      new FirmwareUpdateError("ABORTED", `transfer of release ${this.releaseId} aborted by the gateway`),
    );
  }

  /**
   * Stops without a word to the device (gateway shutdown): timers are cleared, the persisted
   * phase stays as it is so a restart resumes the transfer, and start()'s promise rejects with
   * STOPPED. No-op once settled.
   */
  stop(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#disarm();
    this.#timers.clearTimeout(this.#installTimer);
    this.#installTimer = undefined;
    this.#reject(
      new FirmwareUpdateError("STOPPED", `transfer of release ${this.releaseId} stopped by the gateway`),
    );
  }

  // ---- offering ------------------------------------------------------------------------

  #offer(): void {
    if (this.#offers >= this.#o.maxOffers) {
      this.#fail(
        new FirmwareUpdateError(
          "NO_RESPONSE",
          `device ${hex(this.deviceId)} did not answer ${this.#offers} firmware offers (no update support, or offline)`,
        ),
      );
      return;
    }
    this.#offers++;
    this.#setPhase("offering");
    this.#send({
      type: FrameType.FwOffer,
      deviceId: this.deviceId,
      releaseId: this.releaseId,
      firmware: this.info.version,
      securityCounter: this.info.securityCounter,
      imageSize: this.info.imageSize,
      sha256: this.info.sha256,
    });
    this.#arm(this.#o.offerTimeoutMs, () => this.#offer());
  }

  #onStatus(s: FwStatusFrame): void {
    if (s.releaseId !== this.releaseId) {
      // The device is not (or no longer) on this release: a lost state record, a replaced
      // transfer, or an unsolicited status after HELLO. Offer again (bounded by maxOffers).
      if (this.#phase !== "offering") this.#offer();
      return;
    }
    if (s.result === FwResult.Refused) {
      // Refused in any state: in IDLE the outcome of this release; in READY or TESTING a device
      // that holds another release answers BUSY and stays as it is (PROTOCOL.md, "Device rules"),
      // so its state is the other release's, not ours.
      this.#fail(
        new FirmwareUpdateError(
          "REFUSED",
          `device ${hex(this.deviceId)} refused release ${this.releaseId}: ${reasonName(s.reason)}`,
          { reason: reasonName(s.reason) },
        ),
      );
      return;
    }
    if (s.state === FwState.Receiving) {
      if (s.nextOffset > this.info.imageSize) {
        this.#fail(this.#beyond(s.nextOffset));
        return;
      }
      this.#window = Math.max(1, Math.min(s.window, this.#o.maxWindow));
      this.#maxChunk = s.maxChunk;
      // The device's offset is authoritative: after a reconnect the chunks in flight were lost,
      // after a power cut it may even be below what it acknowledged. Chunks still on the line
      // answer OUT_OF_ORDER, ignored until progress (see #awaitingProgress).
      this.#acked = s.nextOffset;
      this.#next = s.nextOffset;
      this.#ackedHigh = Math.max(this.#ackedHigh, s.nextOffset);
      this.#awaitingProgress = this.#phase === "transferring";
      this.#setPhase("transferring");
      this.#arm(this.#o.ackTimeoutMs, this.#ackTimeout);
      this.#pump();
      return;
    }
    if (s.state === FwState.Ready || s.state === FwState.Testing) {
      this.#acked = this.info.imageSize;
      if (this.#phase !== "installing") {
        this.#readyMs = this.#timers.now();
        this.#setPhase("installing");
        this.#disarm();
        this.#installTimer = this.#timers.setTimeout(() => {
          this.#fail(
            new FirmwareUpdateError(
              "INSTALL_TIMEOUT",
              `device ${hex(this.deviceId)} verified release ${this.releaseId} but did not report the install within ${this.#o.installTimeoutMs} ms`,
            ),
          );
        }, this.#o.installTimeoutMs);
      }
      return;
    }
    // IDLE: an outcome for this release, or none (the device dropped the transfer).
    switch (s.result) {
      case FwResult.Installed:
        if (compareVersions(s.firmware, this.info.version) !== 0) {
          this.#fail(
            new FirmwareUpdateError(
              "PROTOCOL",
              `device reports release ${this.releaseId} INSTALLED but runs ${versionText(s.firmware)}, not ${versionText(this.info.version)}`,
            ),
          );
          return;
        }
        this.#succeed(s);
        return;
      case FwResult.Reverted:
        this.#fail(
          new FirmwareUpdateError(
            "REVERTED",
            `device ${hex(this.deviceId)} reverted release ${this.releaseId} to ${versionText(s.firmware)}: ${reasonName(s.reason)}`,
            { reason: reasonName(s.reason) },
          ),
        );
        return;
      case FwResult.Aborted:
        // An abort this session did not send (a restart sends FW_ABORT before its offer: the
        // reply to that abort is expected and the offer that follows starts afresh).
        if (this.#restart && this.#offers <= 1 && this.#phase === "offering") return;
        this.#fail(
          new FirmwareUpdateError(
            "ABORTED",
            `device ${hex(this.deviceId)} reports release ${this.releaseId} aborted`,
          ),
        );
        return;
      default:
        if (this.#phase !== "offering") this.#offer();
    }
  }

  // ---- transferring --------------------------------------------------------------------

  /** Sends chunks while the window allows (go-back-N). */
  #pump(): void {
    if (this.#settled) return;
    const size = this.info.imageSize;
    while (this.#next < size && this.#next - this.#acked < this.#window * this.#maxChunk) {
      const len = Math.min(this.#maxChunk, size - this.#next);
      const offset = this.#next;
      this.#send({
        type: FrameType.FwChunk,
        deviceId: this.deviceId,
        releaseId: this.releaseId,
        offset,
        data: this.#image.subarray(offset, offset + len),
      });
      this.#bytesSent += len;
      if (offset < this.#highWater) this.#retransmitted += Math.min(len, this.#highWater - offset);
      this.#next = offset + len;
      this.#highWater = Math.max(this.#highWater, this.#next);
    }
  }

  #onAck(a: FwChunkAckFrame): void {
    if (this.#phase !== "transferring") return; // late acks after READY, or before the status
    if (a.nextOffset > this.info.imageSize) {
      this.#fail(this.#beyond(a.nextOffset));
      return;
    }
    switch (a.status) {
      case FwAckStatus.Ok:
        if (a.nextOffset > this.#acked) {
          this.#acked = a.nextOffset;
          if (this.#next < this.#acked) this.#next = this.#acked;
          if (a.nextOffset > this.#ackedHigh) {
            this.#ackedHigh = a.nextOffset;
            this.#rewinds = 0;
          }
          this.#awaitingProgress = false;
          this.#arm(this.#o.ackTimeoutMs, this.#ackTimeout);
          this.#progress();
          this.#pump();
        }
        return;
      case FwAckStatus.OutOfOrder:
        // A chunk was lost (go back to the device's offset), unless this answers a chunk sent
        // before the last rewind; then the resent chunks are already on their way.
        if (this.#awaitingProgress) return;
        this.#rewind(a.nextOffset);
        return;
      case FwAckStatus.WriteFailed:
        this.#rewind(a.nextOffset);
        return;
      default:
        this.#fail(
          new FirmwareUpdateError(
            "PROTOCOL",
            `device ${hex(this.deviceId)} answered BAD_LENGTH at offset ${a.nextOffset} (max_chunk ${this.#maxChunk})`,
          ),
        );
    }
  }

  /** Goes back to the device's offset (it is authoritative, also when lower than acknowledged). */
  #rewind(to: number): void {
    if (++this.#rewinds > this.#o.maxRewinds) {
      this.#fail(
        new FirmwareUpdateError(
          "TOO_MANY_RETRIES",
          `${this.#o.maxRewinds} retransmissions in a row at offset ${to} of release ${this.releaseId} without progress`,
        ),
      );
      return;
    }
    this.#totalRewinds++;
    this.#acked = Math.min(to, this.info.imageSize);
    this.#next = this.#acked;
    this.#awaitingProgress = true;
    this.#arm(this.#o.ackTimeoutMs, this.#ackTimeout);
    this.#pump();
  }

  #beyond(offset: number): FirmwareUpdateError {
    return new FirmwareUpdateError(
      "PROTOCOL",
      `device ${hex(this.deviceId)} names offset ${offset}, beyond the ${this.info.imageSize}-byte image of release ${this.releaseId}`,
    );
  }

  #ackTimeout = (): void => {
    this.#rewind(this.#acked);
  };

  // ---- outcome -------------------------------------------------------------------------

  #succeed(s: FwStatusFrame): void {
    const now = this.#timers.now();
    this.#settle("done");
    this.#resolve({
      deviceId: this.deviceId,
      releaseId: this.releaseId,
      firmware: s.firmware,
      imageSize: this.info.imageSize,
      bytesSent: this.#bytesSent,
      retransmittedBytes: this.#retransmitted,
      offers: this.#offers,
      rewinds: this.#totalRewinds,
      transferMs: (this.#readyMs || now) - this.#startedMs,
      totalMs: now - this.#startedMs,
    });
  }

  #fail(e: FirmwareUpdateError): void {
    if (this.#settled) return;
    // The device went quiet (a disconnect): nothing it wrote is lost, the next offer resumes.
    const quiet = e.code === "NO_RESPONSE" || e.code === "TOO_MANY_RETRIES";
    this.#settle(quiet ? "interrupted" : "failed", e.code + (e.reason ? `/${e.reason}` : ""));
    this.#reject(e);
  }

  #settle(phase: FirmwarePhase, error?: string): void {
    this.#settled = true;
    this.#disarm();
    this.#timers.clearTimeout(this.#installTimer);
    this.#installTimer = undefined;
    this.#phase = phase;
    this.#persist(error);
    this.#emit();
  }

  #setPhase(p: FirmwarePhase): void {
    if (this.#phase === p) return;
    this.#phase = p;
    this.#persist();
    this.#emit();
  }

  #progress(): void {
    if (this.#acked - this.#persistedAt >= this.#o.persistEveryBytes) this.#persist();
    this.#emit();
  }

  #emit(persistError?: unknown): void {
    this.#onProgress?.({
      deviceId: this.deviceId,
      releaseId: this.releaseId,
      phase: this.#phase,
      ackedOffset: this.#acked,
      imageSize: this.info.imageSize,
      bytesSent: this.#bytesSent,
      rewinds: this.#totalRewinds,
      ...(persistError === undefined ? {} : { persistError }),
    });
  }

  #persist(error?: string): void {
    if (!this.#store) return;
    this.#persistedAt = this.#acked;
    const p: FirmwareProgress = {
      deviceId: this.deviceId,
      releaseId: this.releaseId,
      sha256: Buffer.from(this.info.sha256).toString("hex"),
      imageSize: this.info.imageSize,
      phase: this.#phase,
      ackedOffset: this.#acked,
      updatedMs: this.#timers.now(),
      ...(error === undefined ? {} : { error }),
    };
    // Not awaited: the transfer does not wait for the disk. A failure is reported, not swallowed.
    this.#store.save(p).catch((e: unknown) => this.#emit(e));
  }

  #arm(ms: number, fn: () => void): void {
    this.#disarm();
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#settled) fn();
    }, ms);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function reasonName(code: number): FwReasonName | `REASON_${number}` {
  const hit = (Object.entries(FwReason) as Array<[FwReasonName, number]>).find(([, v]) => v === code);
  return hit ? hit[0] : `REASON_${code}`;
}

function hex(id: number): string {
  return id.toString(16).padStart(8, "0");
}
