/**
 * What access control reads from the registry watch: the current view and whether it is stale.
 * An interface so tests can drive the policy from a hand-built view.
 */
import type { RegistryView } from "../chain/registry-view.ts";

/**
 * Stale policy (`registry.stalePolicy`): `keep` serves the last known state; `refuse-new` also
 * serves it to clients and devices already admitted, but refuses new connections (CONNACK 5,
 * not authorised) and devices not admitted before the cache went stale (UNKNOWN_DEVICE).
 */
export type StalePolicy = "keep" | "refuse-new";

export interface RegistryState {
  readonly view: RegistryView;
  /** True when no refresh succeeded within registry.maxStaleMs (or never). */
  readonly stale: boolean;
}
