/**
 * The device side of the firmware update exchange, written from hardware/PROTOCOL.md
 * ("Firmware update (v1.1)") alone, on top of the independent codec and device of
 * device-client.ts: the state record, FW_OFFER / FW_CHUNK / FW_ABORT handling, the checks of the
 * last chunk, the reset (bootloader steps 2–3), the trial and its confirmation, and the security
 * counter. Flash is a byte array; "non-volatile" is what survives `powerCut()`.
 * firmware-device.test.ts runs it against a real `vigil start`.
 */
import { createHash, type Hash } from "node:crypto";
import {
  T,
  Waiters,
  crc32,
  encodeFrame,
  type Device,
  type Frame,
  type Link,
  type Version3,
} from "./device-client.ts";

// PROTOCOL.md "FW_STATUS"
export const FW_STATE = { IDLE: 0, RECEIVING: 1, READY: 2, TESTING: 3 } as const;
export const FW_RESULT = { NONE: 0, INSTALLED: 1, REVERTED: 2, REFUSED: 3, ABORTED: 4 } as const;
export const FW_REASON = {
  NONE: 0,
  HASH_MISMATCH: 1,
  OLDER_VERSION: 2,
  TOO_LARGE: 3,
  BAD_IMAGE: 4,
  FLASH_ERROR: 5,
  BUSY: 6,
  NOT_CONFIRMED: 7,
  INTERRUPTED: 8,
} as const;
// PROTOCOL.md "FW_CHUNK_ACK"
export const CHUNK_ACK = { OK: 0, OUT_OF_ORDER: 1, WRITE_FAILED: 2, BAD_LENGTH: 3 } as const;
/** "After 3 consecutive read-back failures it gives up" */
const MAX_WRITE_FAILURES = 3;
const HEADER_SIZE = 32;

type Offer = Extract<Frame, { type: 0x10 }>;
type Chunk = Extract<Frame, { type: 0x11 }>;
type Status = Extract<Frame, { type: 0x13 }>;

/** The state record the device keeps in non-volatile memory ("Device rules"). */
interface Record {
  state: number;
  releaseId: number;
  imageSize: number;
  sha256: string;
  version: Version3;
  counter: number;
  result: number;
  reason: number;
  securityCounter: number;
  /** next_offset rounded down to the last completed sector */
  persistedOffset: number;
}

export interface FirmwareDeviceOptions {
  /** the image in the primary slot at the factory (a VGFW image: header + firmware) */
  primary: Buffer;
  /** the device's security counter at the factory */
  securityCounter: number;
  slotSize: number;
  window: number;
  maxChunk: number;
  /** flash erase sector (the persisted offset is rounded down to it) */
  sectorSize?: number;
  /**
   * When the trial image confirms itself: "after-ack" once its first DATA frame is ACKed (it
   * "runs, samples, reaches the gateway"), "never" (a bad image: the next reset reverts it).
   */
  confirm?: "after-ack" | "never" | "manual";
  /** a faulty device: its INSTALLED FW_STATUS names this version instead of the one it runs */
  installedClaims?: Version3;
  /** whether the confirmation repeats the boot's HELLO before its FW_STATUS (default true) */
  helloAtConfirm?: boolean;
  /** a trial that never confirms resets (its watchdog) after this long */
  trialResetMs?: number;
  /** how long after a HELLO the FW_STATUS follows (PROTOCOL.md names no bound) */
  statusAfterHelloMs?: number;
  /** the values of a DATA frame (the device's HELLO channels) the trial image samples */
  sample: number[];
  /** read-back fails for the chunk at these offsets (once per listed occurrence) */
  writeFaultsAt?: number[];
}

/** Parses a VGFW header (PROTOCOL.md "Firmware image"); undefined when the magic or size is wrong. */
export function parseHeader(
  img: Uint8Array,
): { headerSize: number; version: Version3; flags: number; counter: number; imageSize: number } | undefined {
  if (img.length < HEADER_SIZE) return undefined;
  const b = Buffer.from(img.buffer, img.byteOffset, img.length);
  if (b.subarray(0, 4).toString("latin1") !== "VGFW") return undefined;
  return {
    headerSize: b.readUInt16LE(4),
    version: { major: b[6]!, minor: b[7]!, patch: b.readUInt16LE(8) },
    flags: b.readUInt16LE(10),
    counter: b.readUInt32LE(12),
    imageSize: b.readUInt32LE(16),
  };
}

const cmp = (a: Version3, b: Version3) => a.major - b.major || a.minor - b.minor || a.patch - b.patch;
export const vtext = (v: Version3) => `${v.major}.${v.minor}.${v.patch}`;

/**
 * A device that installs firmware the way PROTOCOL.md describes. It answers the FW_* frames of
 * its id on the device's link and drives the device's HELLO at every reset.
 */
export class FirmwareDevice {
  /** what the device sent and received, for the tests */
  readonly sent: Frame[] = [];
  readonly received: Frame[] = [];
  /** "resets": the bootloader's outcome of each reset */
  readonly boots: string[] = [];
  primary: Buffer;
  secondary: Buffer;
  /** the most chunks seen ahead of next_offset (counting the one received) */
  maxAhead = 0;
  /** the non-volatile state record */
  nv: Record;
  // RAM: lost at a power cut
  private nextOffset = 0;
  private hash: Hash | undefined;
  /**
   * Read-back failures since a chunk at or past the last failed one read back (PROTOCOL.md
   * FW_CHUNK, revision 1.4): the chunks before it, written again after the rewind to the sector
   * start, do not set the count back. `failedEnd` is the end of the last failed chunk.
   */
  private writeFailures = 0;
  private failedEnd = 0;
  private writeFaults: number[];
  private readonly waits = new Waiters();
  private resetTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    readonly dev: Device,
    readonly o: FirmwareDeviceOptions,
  ) {
    this.primary = Buffer.from(o.primary);
    this.secondary = Buffer.alloc(o.slotSize, 0xff);
    this.nv = {
      state: FW_STATE.IDLE,
      releaseId: 0,
      imageSize: 0,
      sha256: "",
      version: { major: 0, minor: 0, patch: 0 },
      counter: 0,
      result: FW_RESULT.NONE,
      reason: FW_REASON.NONE,
      securityCounter: o.securityCounter,
      persistedOffset: 0,
    };
    this.writeFaults = [...(o.writeFaultsAt ?? [])];
    dev.o.firmware = this.running();
    dev.link.onReply((f) => {
      if (f.deviceId !== dev.id) return; // several devices may share a line
      if (f.type === T.FW_OFFER || f.type === T.FW_CHUNK || f.type === T.FW_ABORT) {
        this.received.push(f);
        if (f.type === T.FW_OFFER) this.onOffer(f);
        else if (f.type === T.FW_CHUNK) this.onChunk(f);
        else this.onAbort(f.releaseId);
        this.wake();
      } else if (
        f.type === T.ACK &&
        this.nv.state === FW_STATE.TESTING &&
        (this.o.confirm ?? "after-ack") === "after-ack"
      )
        this.confirm();
    });
  }

  /** The header's version of the image in the primary slot ("A device reports …"). */
  running(): Version3 {
    return parseHeader(this.primary)!.version;
  }

  /** The offset of the next chunk the device wants (RAM). */
  get offset(): number {
    return this.nextOffset;
  }

  /** Boot: HELLO, then FW_STATUS ("after every HELLO"). */
  boot(): void {
    this.dev.o.firmware = this.running();
    this.dev.hello();
    this.statusAfterHello();
  }
  private statusAfterHello(): void {
    const ms = this.o.statusAfterHelloMs ?? 0;
    if (ms === 0) this.status();
    else this.timers.push(setTimeout(() => this.status(), ms));
  }

  // ---- frames out ----
  private send(f: Frame): void {
    this.sent.push(f);
    this.dev.link.send(encodeFrame(f));
    this.wake();
  }
  /** FW_STATUS from the state record; `over` for the BUSY refusal of another release. */
  status(over: Partial<Status> = {}): void {
    const s = this.nv;
    const inTransfer = s.state === FW_STATE.RECEIVING;
    const held = s.state === FW_STATE.READY || s.state === FW_STATE.TESTING;
    this.send({
      type: T.FW_STATUS,
      deviceId: this.dev.id,
      state: s.state,
      // "result (meaningful in IDLE, else 0 …)"
      result: s.state === FW_STATE.IDLE ? s.result : FW_RESULT.NONE,
      reason: s.state === FW_STATE.IDLE ? s.reason : FW_REASON.NONE,
      window: this.o.window,
      releaseId: s.releaseId,
      nextOffset: inTransfer ? this.nextOffset : held ? s.imageSize : 0,
      slotSize: this.o.slotSize,
      securityCounter: s.securityCounter,
      firmware:
        (s.result === FW_RESULT.INSTALLED && s.state === FW_STATE.IDLE && this.o.installedClaims) ||
        this.running(),
      maxChunk: this.o.maxChunk,
      ...over,
    });
  }
  private chunkAck(status: number): void {
    this.send({
      type: T.FW_CHUNK_ACK,
      deviceId: this.dev.id,
      releaseId: this.nv.releaseId,
      nextOffset: this.nextOffset,
      status,
    });
  }

  // ---- FW_OFFER ("Device rules") ----
  private onOffer(f: Offer): void {
    const s = this.nv;
    const same = f.releaseId === s.releaseId;
    if (s.state === FW_STATE.READY || s.state === FW_STATE.TESTING) {
      if (same) this.status();
      else this.status({ releaseId: f.releaseId, result: FW_RESULT.REFUSED, reason: FW_REASON.BUSY });
      return;
    }
    if (s.state === FW_STATE.RECEIVING && same && f.imageSize === s.imageSize && f.sha256 === s.sha256) {
      this.status(); // the resume query: where to continue
      return;
    }
    const known: number[] = [FW_RESULT.INSTALLED, FW_RESULT.REVERTED, FW_RESULT.REFUSED];
    if (s.state === FW_STATE.IDLE && same && known.includes(s.result)) {
      this.status(); // an outcome is not restarted by an offer
      return;
    }
    // A new transfer, replacing any partial one.
    Object.assign(s, {
      releaseId: f.releaseId,
      imageSize: f.imageSize,
      sha256: f.sha256,
      version: f.firmware,
      counter: f.securityCounter,
      persistedOffset: 0,
    });
    const refuse = (reason: number) => {
      Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.REFUSED, reason });
      this.status();
    };
    if (f.imageSize > this.o.slotSize) return refuse(FW_REASON.TOO_LARGE);
    if (f.imageSize < HEADER_SIZE) return refuse(FW_REASON.BAD_IMAGE);
    if (f.securityCounter < s.securityCounter || cmp(f.firmware, this.running()) <= 0)
      return refuse(FW_REASON.OLDER_VERSION);
    Object.assign(s, { state: FW_STATE.RECEIVING, result: FW_RESULT.NONE, reason: FW_REASON.NONE });
    this.startReceive(0);
    this.status();
  }

  /** Receive from `offset` (a sector start): the streaming hash is rebuilt from what flash holds. */
  private startReceive(offset: number): void {
    this.nextOffset = offset;
    this.writeFailures = 0;
    this.failedEnd = 0;
    this.hash = createHash("sha256").update(this.secondary.subarray(0, offset));
  }

  // ---- FW_CHUNK ----
  private onChunk(f: Chunk): void {
    const s = this.nv;
    if (s.state !== FW_STATE.RECEIVING || f.releaseId !== s.releaseId) {
      this.status(); // "in reply to an FW_CHUNK for a release it is not receiving"
      return;
    }
    const data = Buffer.from(f.data, "hex");
    // Chunks the gateway had out beyond next_offset: at most `window` (gateway rule 3).
    const ahead = Math.ceil((f.offset + data.length - this.nextOffset) / this.o.maxChunk);
    this.maxAhead = Math.max(this.maxAhead, ahead);
    if (f.offset !== this.nextOffset) return this.chunkAck(CHUNK_ACK.OUT_OF_ORDER);
    const end = f.offset + data.length;
    if (end > s.imageSize || (data.length !== this.o.maxChunk && end !== s.imageSize))
      return this.chunkAck(CHUNK_ACK.BAD_LENGTH);
    const sector = this.o.sectorSize ?? 4096;
    // Erase the sectors the data reaches, write, read back and compare the CRC with chunk_crc.
    for (let a = Math.ceil(f.offset / sector) * sector; a < end; a += sector)
      this.secondary.fill(0xff, a, Math.min(a + sector, this.o.slotSize));
    data.copy(this.secondary, f.offset);
    const fault = this.writeFaults.indexOf(f.offset);
    if (fault >= 0) {
      this.writeFaults.splice(fault, 1);
      this.secondary[f.offset] = this.secondary[f.offset]! ^ 0x01; // a flash programming fault
    }
    if (crc32(this.secondary.subarray(f.offset, end)) !== crc32(data)) {
      this.failedEnd = end;
      if (++this.writeFailures >= MAX_WRITE_FAILURES) {
        Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.REFUSED, reason: FW_REASON.FLASH_ERROR });
        this.status();
        return;
      }
      // next_offset moves back to the start of the sector, which is erased again
      const start = Math.floor(f.offset / sector) * sector;
      this.secondary.fill(0xff, start, Math.min(start + sector, this.o.slotSize));
      const [failures, failedEnd] = [this.writeFailures, this.failedEnd];
      this.startReceive(start);
      [this.writeFailures, this.failedEnd] = [failures, failedEnd];
      return this.chunkAck(CHUNK_ACK.WRITE_FAILED);
    }
    if (end >= this.failedEnd) this.writeFailures = 0;
    this.hash!.update(data);
    this.nextOffset = end;
    if (Math.floor(end / sector) > Math.floor(f.offset / sector))
      s.persistedOffset = Math.floor(end / sector) * sector;
    if (end < s.imageSize) return this.chunkAck(CHUNK_ACK.OK);
    this.lastChunk();
  }

  /** "The last chunk": hash, header against the offer, counter against the device's. */
  private lastChunk(): void {
    const s = this.nv;
    const refuse = (reason: number) => {
      Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.REFUSED, reason });
      this.status();
    };
    if (this.hash!.digest("hex") !== s.sha256) return refuse(FW_REASON.HASH_MISMATCH);
    const why = this.checkSlot();
    if (why !== undefined) return refuse(why);
    s.state = FW_STATE.READY;
    this.status();
    // "the reference reboots right after sending the FW_STATUS"
    this.resetTimer = setTimeout(() => this.reset(), 20);
  }

  /** The slot's header against the offer (BAD_IMAGE) and its counter against the device's. */
  private checkSlot(): number | undefined {
    const s = this.nv;
    const h = parseHeader(this.secondary.subarray(0, s.imageSize));
    if (
      !h ||
      h.headerSize !== HEADER_SIZE ||
      h.imageSize !== s.imageSize ||
      cmp(h.version, s.version) !== 0 ||
      h.counter !== s.counter
    )
      return FW_REASON.BAD_IMAGE;
    if (h.counter < s.securityCounter) return FW_REASON.OLDER_VERSION;
    return undefined;
  }

  // ---- FW_ABORT ----
  private onAbort(releaseId: number): void {
    const s = this.nv;
    const current = releaseId === s.releaseId;
    const abortable =
      s.state === FW_STATE.RECEIVING ||
      s.state === FW_STATE.READY ||
      (s.state === FW_STATE.IDLE && s.result !== FW_RESULT.NONE);
    if (current && abortable) {
      clearTimeout(this.resetTimer);
      Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.ABORTED, reason: FW_REASON.NONE });
    }
    this.status(); // "Always answered with FW_STATUS"
  }

  // ---- reset: the bootloader, then the application's HELLO and FW_STATUS ----
  reset(): void {
    const s = this.nv;
    const swap = () => {
      const p = this.primary;
      const size = parseHeader(this.secondary)?.imageSize ?? s.imageSize;
      this.primary = Buffer.from(this.secondary.subarray(0, size));
      this.secondary = Buffer.alloc(this.o.slotSize, 0xff);
      p.copy(this.secondary);
    };
    if (s.state === FW_STATE.TESTING) {
      // (2) the trial reset without confirming: swap back
      swap();
      Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.REVERTED, reason: FW_REASON.NOT_CONFIRMED });
      this.boots.push("reverted");
    } else if (s.state === FW_STATE.READY) {
      // (3) re-check the slot, swap, run the trial
      const ok =
        createHash("sha256").update(this.secondary.subarray(0, s.imageSize)).digest("hex") === s.sha256;
      const why = ok ? this.checkSlot() : FW_REASON.HASH_MISMATCH;
      if (why !== undefined) {
        Object.assign(s, { state: FW_STATE.IDLE, result: FW_RESULT.REFUSED, reason: why });
        this.boots.push("refused");
      } else {
        swap();
        s.state = FW_STATE.TESTING;
        this.boots.push("trial");
      }
    } else this.boots.push("ok");
    if (s.state === FW_STATE.RECEIVING) this.startReceive(s.persistedOffset);
    this.dev.o.firmware = this.running();
    this.dev.reboot(); // the next boot_id, sequence from 0, HELLO
    this.statusAfterHello();
    // The trial runs and samples: its first DATA frame ACKed is "reaches the gateway".
    if (s.state === FW_STATE.TESTING) this.dev.sample(this.o.sample);
    if (s.state === FW_STATE.TESTING && this.o.confirm === "never")
      this.resetTimer = setTimeout(() => this.reset(), this.o.trialResetMs ?? 300);
  }

  /** A reconnect without a reboot: HELLO with the same boot_id, then FW_STATUS. */
  reconnect(): void {
    this.dev.hello();
    this.statusAfterHello();
  }

  /** A power cut: RAM is lost (the receive offset falls back to the persisted sector). */
  powerCut(): void {
    this.reset();
  }

  /** The trial checked itself: INSTALLED, the counter becomes the image's; HELLO and FW_STATUS. */
  confirm(): void {
    const s = this.nv;
    if (s.state !== FW_STATE.TESTING) return;
    const h = parseHeader(this.primary)!;
    Object.assign(s, {
      state: FW_STATE.IDLE,
      result: FW_RESULT.INSTALLED,
      reason: FW_REASON.NONE,
      securityCounter: Math.max(s.securityCounter, h.counter),
    });
    // "It sends HELLO with its new version and FW_STATUS": the trial's boot already sent that
    // HELLO; `helloAtConfirm: false` sends only the FW_STATUS.
    if (this.o.helloAtConfirm === false) this.status();
    else this.boot();
  }

  /** Resolves when `pred` holds after a frame in or out (or at once). */
  until(pred: () => boolean, ms: number, what: string): Promise<void> {
    return this.waits.until(pred, ms, () => what);
  }
  private wake(): void {
    this.waits.wake();
  }

  close(): void {
    clearTimeout(this.resetTimer);
    for (const t of this.timers) clearTimeout(t);
  }
}

/** One device's cable on a shared line: while unplugged nothing goes out and nothing comes in. */
export class Cable implements Link {
  plugged = true;
  /** the frames that went out, unencoded */
  readonly sent: Buffer[] = [];
  constructor(private readonly line: Link) {}
  send(frame: Buffer): void {
    if (!this.plugged) return;
    this.sent.push(frame);
    this.line.send(frame);
  }
  onReply(f: (frame: Frame) => void): void {
    this.line.onReply((x) => {
      if (this.plugged) f(x);
    });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
