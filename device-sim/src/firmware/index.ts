/**
 * Simulated MCU firmware updates (hardware/PROTOCOL.md, "Firmware update"): the bootloader
 * and update code ({@link SimFirmware}), its flash ({@link SimFlash}), the simulator hooks and a
 * stand-alone serial device for tests and benchmarks.
 */
import { buildFirmwareImage } from "../../../gateway/src/protocol/firmware-image.ts";
import type { FirmwareVersion } from "../../../gateway/src/protocol/frame.ts";
import { SimFirmware, SimFlash, type SimFirmwareFaults } from "./bootloader.ts";

export { PowerCut, SimFirmware, SimFlash, SwapOp, type BootOutcome, type FwRecord } from "./bootloader.ts";
export { SimFirmwareHooks, type SimFirmwareOptions } from "./sim-hooks.ts";
export { FirmwareSerialDevice, type FirmwareSerialDeviceOptions } from "./serial-device.ts";

/**
 * A device fresh from the factory and powered on once: `version` (counter `securityCounter`)
 * in the primary slot, the bootloader has run (so the device's security counter is the
 * image's), everything else erased. Defaults: 128 KiB slots, 4 KiB sectors, 8 KiB firmware.
 */
export function factoryFirmware(opts: {
  deviceId: number;
  version?: FirmwareVersion;
  securityCounter?: number;
  slotSize?: number;
  sectorSize?: number;
  bodyBytes?: number;
  window?: number;
  faults?: SimFirmwareFaults;
}): SimFirmware {
  const body = new Uint8Array(opts.bodyBytes ?? 8192);
  for (let i = 0; i < body.length; i++) body[i] = (i * 131 + opts.deviceId) & 0xff;
  const image = buildFirmwareImage({
    version: opts.version ?? { major: 1, minor: 0, patch: 0 },
    securityCounter: opts.securityCounter ?? 1,
    body,
  });
  const fw = new SimFirmware({
    deviceId: opts.deviceId,
    flash: new SimFlash(opts.slotSize ?? 128 * 1024, opts.sectorSize ?? 4096, image),
    ...(opts.window === undefined ? {} : { window: opts.window }),
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  fw.boot();
  return fw;
}
