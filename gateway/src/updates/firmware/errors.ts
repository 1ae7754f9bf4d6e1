import { VigilError } from "../../core/errors.ts";
import type { FwReasonName } from "../../protocol/frame.ts";

/**
 * Why a firmware transfer failed (PROTOCOL.md, "Gateway rules"):
 * - `BAD_IMAGE`: the image to send is not a valid Vigil firmware image (header), or does not fit the protocol;
 * - `NO_RESPONSE`: no FW_STATUS after every offer (the device does not support updates or is offline);
 * - `REFUSED`: the device refused the image (`reason`: HASH_MISMATCH, OLDER_VERSION, TOO_LARGE, …);
 * - `REVERTED`: the image was installed but the device went back to the old one (`reason`:
 *   NOT_CONFIRMED, INTERRUPTED);
 * - `ABORTED`: the transfer was aborted (by this gateway or, as the device reports, earlier);
 * - `TOO_MANY_RETRIES`: the link lost the same chunks too many times in a row;
 * - `INSTALL_TIMEOUT`: the device verified the image but never reported the outcome of the install;
 * - `PROTOCOL`: the device answered something the protocol does not allow (e.g. BAD_LENGTH);
 * - `STOPPED`: the gateway stopped the session (shutdown) without telling the device; the
 *   persisted progress lets the next start resume it.
 */
export type FirmwareUpdateErrorCode =
  | "BAD_IMAGE"
  | "NO_RESPONSE"
  | "REFUSED"
  | "REVERTED"
  | "ABORTED"
  | "TOO_MANY_RETRIES"
  | "INSTALL_TIMEOUT"
  | "PROTOCOL"
  | "STOPPED";

export class FirmwareUpdateError extends VigilError {
  override name = "FirmwareUpdateError";
  declare readonly code: FirmwareUpdateErrorCode;
  /** The device's FW_STATUS reason for REFUSED / REVERTED (e.g. "HASH_MISMATCH"). */
  readonly reason: FwReasonName | `REASON_${number}` | undefined;
  constructor(
    code: FirmwareUpdateErrorCode,
    message: string,
    opts: { reason?: FwReasonName | `REASON_${number}`; cause?: unknown } = {},
  ) {
    super(code, message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.reason = opts.reason;
  }
}
