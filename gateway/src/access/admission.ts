/**
 * Registry admission (`ingest.admission: "registry"`): a sensor node may send when the cached
 * registry lists it under this gateway as active. Not registered → UNKNOWN_DEVICE; suspended or
 * revoked → REVOKED_DEVICE. The view is replaced by every refresh that changed it, so a registry
 * change takes effect at the next refresh (within one `registry.schedule` interval), without a
 * restart. Frames stored before a revocation stay stored, sealed and anchored: admission is asked
 * per frame at ingest, never retroactively.
 *
 * O(1): one Map lookup per frame (plus a Set lookup under the `refuse-new` stale policy).
 */
import type { AdmissionVerdict, DeviceAdmission } from "../core/admission.ts";
import type { RegistryState, StalePolicy } from "./registry-state.ts";

export class RegistryAdmission implements DeviceAdmission {
  readonly #state: RegistryState;
  readonly #policy: StalePolicy;
  /** Devices admitted at least once (the `refuse-new` policy keeps serving them while stale). */
  readonly #seen = new Set<number>();

  constructor(state: RegistryState, stalePolicy: StalePolicy = "keep") {
    this.#state = state;
    this.#policy = stalePolicy;
  }

  admit(deviceId: number): AdmissionVerdict {
    const st = this.#state.view.sensorStatus(deviceId);
    if (st === "none") return "unknown";
    if (st !== "active") return "revoked";
    if (this.#policy === "refuse-new" && this.#state.stale && !this.#seen.has(deviceId)) return "unknown";
    this.#seen.add(deviceId);
    return "ok";
  }
}
