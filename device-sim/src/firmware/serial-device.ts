/**
 * One simulated MCU on a serial line that does nothing but firmware updates: HELLO and
 * FW_STATUS at every boot, FW_* frames answered by {@link SimFirmware}, resets, trial images
 * that confirm themselves (or never do), and a flaky link. Used by the pty interop tests and
 * `npm run bench -- firmware`; the full simulator wires the same SimFirmware into its devices.
 */
import { SerialPort } from "serialport";
import { cobsEncode } from "../../../gateway/src/protocol/cobs.ts";
import {
  encodeFrame,
  FrameType,
  type Frame,
  type FwStatusFrame,
} from "../../../gateway/src/protocol/frame.ts";
import { StreamDecoder } from "../../../gateway/src/protocol/stream-decoder.ts";
import { Rng } from "../rng.ts";
import type { BootOutcome, SimFirmware } from "./bootloader.ts";

export interface FirmwareLinkFaults {
  /** Probability that a gateway frame is lost on the way to the device. */
  dropRate?: number;
  /** Probability that one bit of a gateway frame flips on the way (the device's CRC check drops it). */
  corruptRate?: number;
}

export interface FirmwareSerialDeviceOptions {
  path: string;
  firmware: SimFirmware;
  /** Default 115200 (a pty ignores it). */
  baudRate?: number;
  /** Whether the image now running passes its self-test and confirms. Default: every image does. */
  confirms?: (fw: SimFirmware) => boolean;
  /** A trial image that does not confirm is reset by its watchdog after this long, ms. Default 1000. */
  watchdogMs?: number;
  /** Delay between READY and the reset that installs, ms. Default 20. */
  rebootDelayMs?: number;
  /** Delay between a trial boot and its confirmation, ms (its self-test). Default 20. */
  confirmAfterMs?: number;
  link?: FirmwareLinkFaults;
  seed?: number;
  profile?: string;
}

export interface FirmwareDeviceEvents {
  boots: BootOutcome[];
  /** Firmware version text of every HELLO sent. */
  hellos: string[];
  statuses: FwStatusFrame[];
  linkDropped: number;
  linkCorrupted: number;
  /** Gateway frames the device could not decode (corrupted on the link). */
  rejects: number;
}

export class FirmwareSerialDevice {
  readonly fw: SimFirmware;
  readonly events: FirmwareDeviceEvents = {
    boots: [],
    hellos: [],
    statuses: [],
    linkDropped: 0,
    linkCorrupted: 0,
    rejects: 0,
  };
  bootId = 0;
  readonly #o: FirmwareSerialDeviceOptions;
  readonly #rng: Rng;
  readonly #decoder = new StreamDecoder();
  #port: SerialPort | undefined;
  #segment: number[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(opts: FirmwareSerialDeviceOptions) {
    this.#o = opts;
    this.fw = opts.firmware;
    this.#rng = new Rng(opts.seed ?? 1);
  }

  /** Opens the port and boots (runs the bootloader, sends HELLO and FW_STATUS). */
  async open(): Promise<void> {
    await this.#openPort();
    this.#boot();
  }

  /** Pulls the cable: the port closes; RAM (and the transfer state in it) is kept. */
  async disconnect(): Promise<void> {
    const p = this.#port;
    this.#port = undefined;
    if (p?.isOpen) await new Promise<void>((res) => p.close(() => res()));
  }

  /** Plugs it back in and says HELLO (with FW_STATUS), like after any reconnect. */
  async reconnect(): Promise<void> {
    await this.#openPort();
    this.#hello();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await this.disconnect();
  }

  async #openPort(): Promise<void> {
    const port = new SerialPort({
      path: this.#o.path,
      baudRate: this.#o.baudRate ?? 115200,
      autoOpen: false,
    });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    port.on("data", (chunk: Buffer) => this.#onBytes(chunk));
    // A closed pty end reports EIO; the device simply stops hearing the gateway.
    port.on("error", () => undefined);
    this.#port = port;
  }

  /** Link faults act on whole delimited segments, before the device's decoder sees them. */
  #onBytes(chunk: Buffer): void {
    const link = this.#o.link ?? {};
    for (const b of chunk) {
      this.#segment.push(b);
      if (b !== 0) continue;
      const seg = Buffer.from(this.#segment);
      this.#segment = [];
      if (seg.length > 1 && this.#rng.chance(link.dropRate ?? 0)) {
        this.events.linkDropped++;
        continue;
      }
      if (seg.length > 1 && this.#rng.chance(link.corruptRate ?? 0)) {
        const i = this.#rng.int(0, seg.length - 2);
        seg[i] = seg[i]! ^ (1 << this.#rng.int(0, 7));
        this.events.linkCorrupted++;
      }
      this.#decoder.push(seg, {
        frame: ({ frame }) => this.#onFrame(frame),
        reject: () => this.events.rejects++,
      });
    }
  }

  #onFrame(frame: Frame): void {
    const r = this.fw.handle(frame);
    if (r.powerCut) {
      this.#powerCycle();
      return;
    }
    if (r.reply) this.#send(r.reply);
    if (r.reboot) this.#later(this.#o.rebootDelayMs ?? 20, () => this.#boot());
  }

  #powerCycle(): void {
    this.fw.powerCut();
    this.#boot();
  }

  /** A reset: the bootloader runs (power cuts in the swap are retried), then the image says HELLO. */
  #boot(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    let outcome: BootOutcome;
    for (;;) {
      try {
        outcome = this.fw.boot();
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== "POWER_CUT") throw e;
        this.fw.powerCut();
      }
    }
    this.events.boots.push(outcome);
    this.bootId++;
    this.#hello();
    if (this.fw.trial) {
      const good = this.#o.confirms?.(this.fw) ?? true;
      if (good)
        this.#later(this.#o.confirmAfterMs ?? 20, () => {
          this.fw.confirm();
          this.#send(this.fw.status()); // INSTALLED
        });
      else this.#later(this.#o.watchdogMs ?? 1000, () => this.#boot()); // the watchdog resets it
    }
  }

  #hello(): void {
    const v = this.fw.running?.version ?? { major: 0, minor: 0, patch: 0 };
    this.events.hellos.push(`${v.major}.${v.minor}.${v.patch}`);
    this.#send({
      type: FrameType.Hello,
      deviceId: this.fw.deviceId,
      bootId: this.bootId,
      firmware: v,
      profile: this.#o.profile ?? "rotating-v1",
      channels: [{ name: "vib_rms", unit: 1 }],
    });
    this.#send(this.fw.status());
  }

  #send(frame: Frame): void {
    if (frame.type === FrameType.FwStatus) this.events.statuses.push(frame);
    const p = this.#port;
    if (p?.isOpen && !this.#closed) p.write(cobsEncode(encodeFrame(frame)));
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(t);
  }
}
