/**
 * Firmware updates to MCUs over the serial line (hardware/PROTOCOL.md, "Firmware update"):
 * the gateway half of a transfer ({@link FirmwareSession}), the image format, the progress
 * store interface for resuming after a restart, and the typed errors.
 */
export { FirmwareUpdateError, type FirmwareUpdateErrorCode } from "./errors.ts";
export {
  buildFirmwareImage,
  compareVersions,
  IMAGE_HEADER_BYTES,
  parseFirmwareImage,
  versionText,
  type FirmwareImageInfo,
} from "../../protocol/firmware-image.ts";
export {
  MemoryFirmwareProgressStore,
  type FirmwarePhase,
  type FirmwareProgress,
  type FirmwareProgressStore,
} from "./progress.ts";
export {
  FirmwareSession,
  systemTimers,
  type FirmwareProgressEvent,
  type FirmwareResult,
  type FirmwareSessionOptions,
  type FirmwareTimers,
} from "./session.ts";
