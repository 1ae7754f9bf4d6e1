/**
 * A simulated MCU's firmware update code and bootloader: the behaviour of the C reference
 * (hardware/firmware-ref/vigil_fwu.c; hardware/PROTOCOL.md, "Firmware update", "Device rules")
 * in TypeScript, on a simulated flash that survives power cuts.
 *
 * What survives a power cut is {@link SimFlash}: the two slots, the scratch sector and the
 * state record (persisted whole, like the C reference's CRC-protected record: a cut either
 * happens before or after a record write). RAM — the receive offset beyond the last persisted
 * sector, the streaming SHA-256 — is lost; {@link SimFirmware.powerCut} models that.
 *
 * Faults (for the simulator and the tests): power cut when the transfer reaches an offset,
 * power cut after N swap steps, flash read-back failures, an image that never confirms.
 */
import { createHash, type Hash } from "node:crypto";
import { VigilError } from "../../../gateway/src/core/errors.ts";
import { crc32 } from "../../../gateway/src/protocol/crc32.ts";
import {
  FrameType,
  FwAckStatus,
  FwReason,
  FwResult,
  FwState,
  FW_MAX_CHUNK,
  type FirmwareVersion,
  type Frame,
  type FwAckStatusCode,
  type FwChunkAckFrame,
  type FwChunkFrame,
  type FwOfferFrame,
  type FwResultCode,
  type FwStateCode,
  type FwStatusFrame,
} from "../../../gateway/src/protocol/frame.ts";
import {
  compareVersions,
  IMAGE_HEADER_BYTES,
  parseFirmwareImage,
} from "../../../gateway/src/protocol/firmware-image.ts";

/** Thrown by the simulated bootloader when a simulated power cut hits (a fault, not a bug). */
export class PowerCut extends VigilError {
  override name = "PowerCut";
  constructor(message: string) {
    super("POWER_CUT", message);
  }
}

/** Swap in progress: none, install (secondary → primary), revert (back). */
export const SwapOp = { None: 0, Install: 1, Revert: 2 } as const;
export type SwapOpCode = (typeof SwapOp)[keyof typeof SwapOp];

/** The persisted state record (PROTOCOL.md, "Device rules"). */
export interface FwRecord {
  state: FwStateCode;
  result: FwResultCode;
  reason: number;
  releaseId: number;
  imageSize: number;
  /** Persisted receive offset (sector-aligned). */
  nextOffset: number;
  /** Monotonic: never decreases. */
  securityCounter: number;
  offerCounter: number;
  offerVersion: FirmwareVersion;
  sha256: Uint8Array;
  swap: { op: SwapOpCode; sector: number; step: 0 | 1 | 2; count: number };
}

/** Non-volatile memory of the simulated MCU. */
export class SimFlash {
  readonly primary: Uint8Array;
  readonly secondary: Uint8Array;
  readonly scratch: Uint8Array;
  /** The last persisted record (SimFirmware stores a deep copy of its RAM record on every persist). */
  record: FwRecord;
  /** Records written (wear, and "a step was persisted"). */
  writes = 0;

  constructor(
    readonly slotSize: number,
    readonly sectorSize: number,
    factoryImage?: Uint8Array,
  ) {
    if (slotSize % sectorSize !== 0) throw new RangeError("slotSize must be a multiple of sectorSize");
    this.primary = new Uint8Array(slotSize).fill(0xff);
    this.secondary = new Uint8Array(slotSize).fill(0xff);
    this.scratch = new Uint8Array(sectorSize).fill(0xff);
    if (factoryImage) {
      if (factoryImage.length > slotSize) throw new RangeError("factory image does not fit the slot");
      this.primary.set(factoryImage);
    }
    this.record = {
      state: FwState.Idle,
      result: FwResult.None,
      reason: 0,
      releaseId: 0,
      imageSize: 0,
      nextOffset: 0,
      securityCounter: 0,
      offerCounter: 0,
      offerVersion: { major: 0, minor: 0, patch: 0 },
      sha256: new Uint8Array(32),
      swap: { op: SwapOp.None, sector: 0, step: 0, count: 0 },
    };
  }
}

export interface SimFirmwareFaults {
  /** Lose power when the receive offset first reaches this many bytes (once). */
  powerCutAtOffset?: number;
  /** Lose power after this many swap steps of the next install (once). */
  powerCutAfterSwapSteps?: number;
  /** Probability that a chunk reads back wrong from flash (→ WRITE_FAILED). */
  flashFailRate?: number;
  /**
   * Read-back failures before REFUSED FLASH_ERROR (PROTOCOL.md: 3). Infinity makes a device
   * that never gives up, to test the gateway's own bound.
   */
  writeFailureLimit?: number;
}

export interface SimFirmwareOptions {
  deviceId: number;
  flash: SimFlash;
  /** Chunks in flight the device announces. Default 4. */
  window?: number;
  /** Data bytes per chunk the device announces (16..224). Default 224. */
  maxChunk?: number;
  faults?: SimFirmwareFaults;
  /** Random numbers in [0, 1) for flashFailRate. Default Math.random. */
  random?: () => number;
}

/** What the device does after a gateway frame. */
export interface FwHandleResult {
  /** FW_STATUS or FW_CHUNK_ACK to send, if any. */
  reply?: FwStatusFrame | FwChunkAckFrame;
  /** The verified image waits for a reset: send the reply, then reboot. */
  reboot?: boolean;
  /** Power was lost while handling the frame: nothing is sent; power on again (boot()). */
  powerCut?: boolean;
}

export type BootOutcome = "ok" | "trial" | "reverted" | "refused" | "no-image";

export class SimFirmware {
  readonly deviceId: number;
  readonly flash: SimFlash;
  readonly window: number;
  readonly maxChunk: number;
  readonly faults: SimFirmwareFaults;
  readonly #random: () => number;
  // RAM
  /** The working copy of the state record; flash.record is what survives a power cut. */
  #rec!: FwRecord;
  #nextOffset = 0;
  #hash: Hash = createHash("sha256");
  #writeFailures = 0;
  /** Offset of the chunk that failed last: only a chunk written at or past it resets the count. */
  #failedAt = 0;
  #running: { version: FirmwareVersion; securityCounter: number; imageSize: number } | undefined;
  /** Counters for tests and the simulator's report. */
  readonly stats = { chunks: 0, outOfOrder: 0, writeFailures: 0, powerCuts: 0, swapsSteps: 0 };

  constructor(opts: SimFirmwareOptions) {
    this.deviceId = opts.deviceId >>> 0;
    this.flash = opts.flash;
    this.window = opts.window ?? 4;
    this.maxChunk = opts.maxChunk ?? FW_MAX_CHUNK;
    this.faults = { ...opts.faults };
    this.#random = opts.random ?? Math.random;
    this.#powerOn();
  }

  /** The running image's header (undefined when the primary slot holds no valid image). */
  get running(): { version: FirmwareVersion; securityCounter: number; imageSize: number } | undefined {
    return this.#running;
  }

  /** True while the running image is an unconfirmed trial. */
  get trial(): boolean {
    return this.#rec.state === FwState.Testing;
  }

  /** The state record as the device currently holds it. */
  get record(): Readonly<FwRecord> {
    return this.#rec;
  }

  /** RAM is lost; the next step must be boot() (what a real MCU does at power-on). */
  powerCut(): void {
    this.stats.powerCuts++;
    this.#powerOn();
  }

  /**
   * The bootloader, run at every reset: finishes or rolls back a swap, installs a READY image
   * as a trial, reverts an unconfirmed trial. Throws {@link PowerCut} when the swap fault hits
   * (the flash keeps the persisted progress; call powerCut() and boot() again).
   */
  boot(): BootOutcome {
    const r = this.#rec;
    let out: BootOutcome = "ok";
    if (r.swap.op === SwapOp.Install) {
      // Interrupted install: finish the sector in progress, swap back what was exchanged.
      if (r.swap.step !== 0) this.#swapRun(r.swap.sector + 1);
      this.#startSwap(SwapOp.Revert, r.swap.sector);
      r.reason = FwReason.INTERRUPTED;
      this.#persist();
      out = this.#revert();
    } else if (r.swap.op === SwapOp.Revert) {
      out = this.#revert();
    } else if (r.state === FwState.Testing) {
      this.#startSwap(SwapOp.Revert, r.swap.count);
      r.reason = FwReason.NOT_CONFIRMED;
      this.#persist();
      out = this.#revert();
    } else if (r.state === FwState.Ready) {
      this.#hash = createHash("sha256").update(this.flash.secondary.subarray(0, r.imageSize));
      const why = this.#checkSecondary();
      if (why !== FwReason.NONE) {
        this.#finish(FwState.Idle, FwResult.Refused, why);
        out = "refused";
      } else {
        const old = this.#running?.imageSize ?? this.flash.slotSize;
        this.#startSwap(SwapOp.Install, Math.ceil(Math.max(old, r.imageSize) / this.flash.sectorSize));
        this.#persist();
        this.#swapRun(r.swap.count);
        r.swap.op = SwapOp.None;
        r.state = FwState.Testing;
        this.#persist();
        this.#readRunning();
        out = "trial";
      }
    }
    // Like MCUboot, the stored security counter follows the running image once it is
    // confirmed (also the factory image): an older image can never come back.
    if (
      this.#rec.state !== FwState.Testing &&
      this.#running &&
      this.#running.securityCounter > this.#rec.securityCounter
    ) {
      this.#rec.securityCounter = this.#running.securityCounter;
      this.#persist();
    }
    return this.#running ? out : "no-image";
  }

  /** The trial image confirms itself: INSTALLED; the security counter rises to the image's. */
  confirm(): boolean {
    const r = this.#rec;
    if (r.state !== FwState.Testing) return false;
    r.state = FwState.Idle;
    r.result = FwResult.Installed;
    r.reason = FwReason.NONE;
    if (this.#running && this.#running.securityCounter > r.securityCounter)
      r.securityCounter = this.#running.securityCounter;
    this.#persist();
    return true;
  }

  /** FW_STATUS of the current state (sent after every HELLO). */
  status(): FwStatusFrame {
    const r = this.#rec;
    const idle = r.state === FwState.Idle;
    return {
      type: FrameType.FwStatus,
      deviceId: this.deviceId,
      state: r.state,
      result: idle ? r.result : FwResult.None,
      reason: idle ? r.reason : FwReason.NONE,
      window: this.window,
      releaseId: r.releaseId,
      nextOffset: r.state === FwState.Receiving ? this.#nextOffset : idle ? 0 : r.imageSize,
      slotSize: this.flash.slotSize,
      securityCounter: r.securityCounter,
      firmware: this.#running?.version ?? { major: 0, minor: 0, patch: 0 },
      maxChunk: this.maxChunk,
    };
  }

  /** Consumes a gateway frame; anything that is not FW_OFFER/FW_CHUNK/FW_ABORT for this device yields {}. */
  handle(frame: Frame): FwHandleResult {
    if (frame.deviceId !== this.deviceId) return {};
    try {
      switch (frame.type) {
        case FrameType.FwOffer:
          return { reply: this.#onOffer(frame) };
        case FrameType.FwChunk:
          return this.#onChunk(frame);
        case FrameType.FwAbort: {
          const r = this.#rec;
          if (
            frame.releaseId === r.releaseId &&
            (r.state === FwState.Receiving ||
              r.state === FwState.Ready ||
              (r.state === FwState.Idle && r.result !== FwResult.None))
          )
            return { reply: this.#finish(FwState.Idle, FwResult.Aborted, FwReason.NONE) };
          return { reply: this.status() };
        }
        default:
          return {};
      }
    } catch (e) {
      if (e instanceof PowerCut) return { powerCut: true };
      throw e;
    }
  }

  // ---- receive -------------------------------------------------------------------------

  #onOffer(o: FwOfferFrame): FwStatusFrame {
    const r = this.#rec;
    const same =
      o.releaseId === r.releaseId && o.imageSize === r.imageSize && Buffer.from(o.sha256).equals(r.sha256);
    if (r.state === FwState.Ready || r.state === FwState.Testing) {
      const st = this.status();
      return same ? st : { ...st, releaseId: o.releaseId, result: FwResult.Refused, reason: FwReason.BUSY };
    }
    if (same && r.state === FwState.Receiving) return this.status();
    if (
      same &&
      r.state === FwState.Idle &&
      (r.result === FwResult.Installed || r.result === FwResult.Reverted || r.result === FwResult.Refused)
    )
      return this.status();
    r.releaseId = o.releaseId;
    r.imageSize = o.imageSize;
    r.offerCounter = o.securityCounter;
    r.offerVersion = { ...o.firmware };
    r.sha256 = Uint8Array.from(o.sha256);
    r.nextOffset = 0;
    if (o.imageSize > this.flash.slotSize)
      return this.#finish(FwState.Idle, FwResult.Refused, FwReason.TOO_LARGE);
    if (o.imageSize < IMAGE_HEADER_BYTES)
      return this.#finish(FwState.Idle, FwResult.Refused, FwReason.BAD_IMAGE);
    if (
      o.securityCounter < r.securityCounter ||
      (this.#running && compareVersions(o.firmware, this.#running.version) <= 0)
    )
      return this.#finish(FwState.Idle, FwResult.Refused, FwReason.OLDER_VERSION);
    this.#nextOffset = 0;
    this.#writeFailures = 0;
    this.#failedAt = 0;
    this.#hash = createHash("sha256");
    return this.#finish(FwState.Receiving, FwResult.None, FwReason.NONE);
  }

  #onChunk(c: FwChunkFrame): FwHandleResult {
    const r = this.#rec;
    if (r.state !== FwState.Receiving || c.releaseId !== r.releaseId) return { reply: this.status() };
    this.stats.chunks++;
    if (c.offset !== this.#nextOffset) {
      this.stats.outOfOrder++;
      return { reply: this.#ack(FwAckStatus.OutOfOrder) };
    }
    const n = c.data.length;
    const end = c.offset + n;
    if (end > r.imageSize || (n !== this.maxChunk && end !== r.imageSize))
      return { reply: this.#ack(FwAckStatus.BadLength) };
    // "Write" into the slot, then read back against the chunk CRC (PROTOCOL.md, FW_CHUNK).
    this.flash.secondary.set(c.data, c.offset);
    if ((this.faults.flashFailRate ?? 0) > 0 && this.#random() < (this.faults.flashFailRate ?? 0))
      this.flash.secondary[c.offset] = this.flash.secondary[c.offset]! ^ 0x10;
    if (crc32(this.flash.secondary.subarray(c.offset, end)) !== crc32(c.data)) {
      this.stats.writeFailures++;
      const ss = this.flash.sectorSize;
      const s0 = c.offset - (c.offset % ss);
      this.#failedAt = c.offset;
      if (++this.#writeFailures >= (this.faults.writeFailureLimit ?? 3))
        return { reply: this.#finish(FwState.Idle, FwResult.Refused, FwReason.FLASH_ERROR) };
      this.#nextOffset = s0;
      this.#hash = createHash("sha256").update(this.flash.secondary.subarray(0, s0));
      return { reply: this.#ack(FwAckStatus.WriteFailed) };
    }
    // The chunks rewritten below the failed one after the rewind are no proof the fault is gone
    // (PROTOCOL.md, FW_CHUNK: failures count until a chunk at or past the failed one reads back).
    if (c.offset >= this.#failedAt) this.#writeFailures = 0;
    this.#hash.update(c.data);
    this.#nextOffset = end;
    const cut = this.faults.powerCutAtOffset;
    if (cut !== undefined && end >= cut) {
      delete this.faults.powerCutAtOffset; // once
      throw new PowerCut(`power lost at offset ${end}`);
    }
    if (end === r.imageSize) {
      const why = this.#checkSecondary();
      if (why !== FwReason.NONE) return { reply: this.#finish(FwState.Idle, FwResult.Refused, why) };
      r.nextOffset = end;
      return { reply: this.#finish(FwState.Ready, FwResult.None, FwReason.NONE), reboot: true };
    }
    const ss = this.flash.sectorSize;
    if (Math.floor(end / ss) > Math.floor(c.offset / ss)) {
      r.nextOffset = end - (end % ss); // a sector is complete: persist the resume point
      this.#persist();
    }
    return { reply: this.#ack(FwAckStatus.Ok) };
  }

  #checkSecondary(): number {
    const r = this.#rec;
    if (!Buffer.from(this.#hash.digest()).equals(r.sha256)) return FwReason.HASH_MISMATCH;
    let info;
    try {
      info = parseFirmwareImage(this.flash.secondary.subarray(0, r.imageSize));
    } catch {
      // A header the image parser refuses is exactly BAD_IMAGE (the parser's message is not needed here).
      return FwReason.BAD_IMAGE;
    }
    if (info.securityCounter !== r.offerCounter || compareVersions(info.version, r.offerVersion) !== 0)
      return FwReason.BAD_IMAGE;
    if (info.securityCounter < r.securityCounter) return FwReason.OLDER_VERSION;
    return FwReason.NONE;
  }

  #ack(status: FwAckStatusCode): FwChunkAckFrame {
    return {
      type: FrameType.FwChunkAck,
      deviceId: this.deviceId,
      releaseId: this.#rec.releaseId,
      nextOffset: this.#nextOffset,
      status,
    };
  }

  #finish(state: FwStateCode, result: FwResultCode, reason: number): FwStatusFrame {
    const r = this.#rec;
    r.state = state;
    r.result = result;
    r.reason = reason;
    this.#persist();
    return this.status();
  }

  // ---- bootloader ----------------------------------------------------------------------

  #startSwap(op: SwapOpCode, count: number): void {
    this.#rec.swap = { op, sector: 0, step: 0, count };
  }

  /** Swap-using-scratch, one persisted step at a time, up to sector `until` (exclusive). */
  #swapRun(until: number): void {
    const f = this.flash;
    const r = this.#rec;
    const ss = f.sectorSize;
    while (r.swap.sector < until) {
      const o = r.swap.sector * ss;
      const cut = this.faults.powerCutAfterSwapSteps;
      if (cut !== undefined && r.swap.op === SwapOp.Install) {
        if (cut <= 0) {
          delete this.faults.powerCutAfterSwapSteps; // once
          // The step's destination is left half copied; the next boot runs the step again.
          const dst = r.swap.step === 0 ? f.scratch : r.swap.step === 1 ? f.primary : f.secondary;
          dst.fill(0x5a, r.swap.step === 0 ? 0 : o, (r.swap.step === 0 ? 0 : o) + ss / 2);
          throw new PowerCut(
            `power lost during the install swap (sector ${r.swap.sector}, step ${r.swap.step})`,
          );
        }
        this.faults.powerCutAfterSwapSteps = cut - 1;
      }
      if (r.swap.step === 0) f.scratch.set(f.primary.subarray(o, o + ss));
      else if (r.swap.step === 1) f.primary.set(f.secondary.subarray(o, o + ss), o);
      else f.secondary.set(f.scratch, o);
      this.stats.swapsSteps++;
      if (r.swap.step === 2) r.swap = { ...r.swap, sector: r.swap.sector + 1, step: 0 };
      else r.swap = { ...r.swap, step: (r.swap.step + 1) as 1 | 2 };
      this.#persist();
    }
  }

  #revert(): BootOutcome {
    const r = this.#rec;
    this.#swapRun(r.swap.count);
    r.swap = { ...r.swap, op: SwapOp.None };
    r.state = FwState.Idle;
    r.result = FwResult.Reverted;
    this.#persist();
    this.#readRunning();
    return "reverted";
  }

  // ---- state ---------------------------------------------------------------------------

  /** A record write: the flash keeps a deep copy (the C reference appends a CRC-protected record). */
  #persist(): void {
    this.flash.record = copyRecord(this.#rec);
    this.flash.writes++;
  }

  #powerOn(): void {
    // RAM starts from what the flash holds.
    this.#rec = copyRecord(this.flash.record);
    this.#readRunning();
    this.#writeFailures = 0;
    this.#failedAt = 0;
    if (this.#rec.state === FwState.Receiving) {
      this.#nextOffset = this.#rec.nextOffset;
      this.#hash = createHash("sha256").update(this.flash.secondary.subarray(0, this.#nextOffset));
    } else {
      this.#nextOffset = 0;
      this.#hash = createHash("sha256");
    }
  }

  #readRunning(): void {
    const p = this.flash.primary;
    const size = Buffer.from(p.buffer, p.byteOffset + 16, 4).readUInt32LE(0);
    try {
      if (size < IMAGE_HEADER_BYTES || size > p.length) throw new RangeError("no image");
      const info = parseFirmwareImage(p.subarray(0, size));
      this.#running = { version: info.version, securityCounter: info.securityCounter, imageSize: size };
    } catch {
      // No parseable image in the primary slot: the device reports version 0.0.0 (boot() says "no-image").
      this.#running = undefined;
    }
  }
}

function copyRecord(r: FwRecord): FwRecord {
  return {
    ...r,
    sha256: Uint8Array.from(r.sha256),
    swap: { ...r.swap },
    offerVersion: { ...r.offerVersion },
  };
}
