/**
 * Firmware updates inside the full simulator (device-sim/src/simulator.ts): routes FW_OFFER /
 * FW_CHUNK / FW_ABORT to the device's {@link SimFirmware}, resets the device when the image is
 * verified (bootloader, then HELLO with the running version and FW_STATUS), confirms a good
 * trial image when its first DATA frame is acknowledged, and lets the watchdog reset a bad one.
 */
import { encodeFrame, FrameType, type Frame } from "../../../gateway/src/protocol/frame.ts";
import type { SimDevice } from "../device.ts";
import { PowerCut, type SimFirmware } from "./bootloader.ts";

export interface SimFirmwareOptions {
  /** The device's update code and bootloader, or undefined for a device without update support. */
  for: (deviceId: number) => SimFirmware | undefined;
  /** Whether the image a device now runs passes its self-test. Default: every image does. */
  confirms?: (deviceId: number, fw: SimFirmware) => boolean;
  /** A trial image that does not confirm is reset by its watchdog after this long, ms. Default 3000. */
  watchdogMs?: number;
  /** Delay between READY and the reset that installs, ms. Default 50. */
  rebootDelayMs?: number;
}

export class SimFirmwareHooks {
  readonly #timers = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly opts: SimFirmwareOptions,
    private readonly send: (deviceId: number, raw: Uint8Array) => void,
  ) {}

  /** FW_STATUS after a HELLO (PROTOCOL.md: devices with update support send it after every HELLO). */
  announce(dev: SimDevice): void {
    if (dev.updater) this.send(dev.id, encodeFrame(dev.updater.status()));
  }

  /** Handles a gateway → device frame; true when it was an FW_* frame. */
  onFrame(dev: SimDevice, frame: Frame): boolean {
    if (
      frame.type !== FrameType.FwOffer &&
      frame.type !== FrameType.FwChunk &&
      frame.type !== FrameType.FwAbort
    )
      return false;
    const fw = dev.updater;
    if (!fw) return true; // a device without update support rejects FW_* frames (BAD_TYPE): silence
    const r = fw.handle(frame);
    if (r.powerCut) {
      fw.powerCut();
      this.#reset(dev);
      return true;
    }
    if (r.reply) this.send(dev.id, encodeFrame(r.reply));
    if (r.reboot) this.#later(dev, this.opts.rebootDelayMs ?? 50, () => this.#reset(dev));
    return true;
  }

  /** A good trial image confirms itself once it reached the gateway (its first ACK). */
  onAck(dev: SimDevice): void {
    const fw = dev.updater;
    if (!fw?.trial || !this.#good(dev, fw)) return;
    fw.confirm();
    this.send(dev.id, encodeFrame(fw.status()));
  }

  /**
   * The device was reset by something else (the simulator's reboot fault): RAM is lost and the
   * bootloader runs before the device says HELLO. Call before sending the HELLO, then announce().
   */
  beforeReboot(dev: SimDevice): void {
    const fw = dev.updater;
    if (!fw) return;
    fw.powerCut();
    this.#boot(fw);
  }

  close(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  /** A reset: the bootloader runs (power cuts in its swap are retried), then HELLO + FW_STATUS. */
  #reset(dev: SimDevice): void {
    const fw = dev.updater;
    if (!fw) return;
    this.#boot(fw);
    dev.reboot(); // an MCU reset: new boot id, the RAM resend ring is lost
    this.send(dev.id, dev.hello());
    this.announce(dev);
    if (fw.trial && !this.#good(dev, fw))
      this.#later(dev, this.opts.watchdogMs ?? 3000, () => this.#reset(dev));
  }

  #boot(fw: SimFirmware): void {
    for (;;) {
      try {
        fw.boot();
        return;
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        fw.powerCut();
      }
    }
  }

  #good(dev: SimDevice, fw: SimFirmware): boolean {
    return this.opts.confirms?.(dev.id, fw) ?? true;
  }

  #later(dev: SimDevice, ms: number, fn: () => void): void {
    clearTimeout(this.#timers.get(dev.id));
    this.#timers.set(
      dev.id,
      setTimeout(() => {
        this.#timers.delete(dev.id);
        fn();
      }, ms),
    );
  }
}
