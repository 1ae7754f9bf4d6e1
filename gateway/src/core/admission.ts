/**
 * Device admission: "may this device send now?", asked by ingest for every HELLO and DATA frame
 * from every source (serial, embedded broker, external broker). Ingest declares the question; the
 * answer comes from the configuration's static lists ({@link ListAdmission}) or from the registry
 * cache (access/admission.ts), plugged in by runtime.ts. An implementation answers from memory in
 * O(1): it is on the hot path of every frame.
 */

/**
 * `ok`: the device may send. `unknown`: not registered for this gateway (NACK UNKNOWN_DEVICE).
 * `revoked`: suspended or revoked (NACK REVOKED_DEVICE).
 */
export type AdmissionVerdict = "ok" | "unknown" | "revoked";

export interface DeviceAdmission {
  /** The verdict for `deviceId` now. Must not throw and must not block. */
  admit(deviceId: number): AdmissionVerdict;
}

/** Admits every device (development; `ingest.admission: "open"` without lists). */
export const OPEN_ADMISSION: DeviceAdmission = { admit: () => "ok" };

/**
 * Static lists from the configuration: `revoked` devices are refused as revoked; when `allow` is
 * given, devices outside it are refused as unknown.
 */
export class ListAdmission implements DeviceAdmission {
  readonly #allow: ReadonlySet<number> | undefined;
  readonly #revoked: ReadonlySet<number>;
  constructor(allow: ReadonlySet<number> | undefined, revoked: ReadonlySet<number> = new Set()) {
    this.#allow = allow;
    this.#revoked = revoked;
  }
  admit(deviceId: number): AdmissionVerdict {
    if (this.#revoked.has(deviceId)) return "revoked";
    if (this.#allow && !this.#allow.has(deviceId)) return "unknown";
    return "ok";
  }
}
