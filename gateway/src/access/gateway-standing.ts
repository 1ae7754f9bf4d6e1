/**
 * The gateway's own standing in the registry, which decides whether it may seal and anchor:
 * registered, active, and its local signing key the one the registry holds. Anything else stops
 * sealing and anchoring (ingest and storage go on; the frames are sealed once the registry says
 * so again), because a batch signed by a key the registry does not hold, or anchored by a
 * suspended or revoked gateway, would be refused on chain or verify as nobody's.
 */
import type { RegistryView } from "../chain/registry-view.ts";
import type { Hex } from "../core/hex.ts";

export type GatewayStanding = "active" | "unregistered" | "suspended" | "revoked" | "key_mismatch";

/** The gateway's standing from the view; `publicKey` is the local signer's registry encoding. */
export function gatewayStanding(view: RegistryView, publicKey: Hex | undefined): GatewayStanding {
  const g = view.gateway;
  if (!g || g.status === "none") return "unregistered";
  if (g.status === "suspended") return "suspended";
  if (g.status === "revoked") return "revoked";
  if (publicKey !== undefined && g.publicKey.toLowerCase() !== publicKey.toLowerCase()) return "key_mismatch";
  return "active";
}

/** One sentence per standing, for the log and the retained access status. */
export const STANDING_SENTENCE: Record<GatewayStanding, string> = {
  active: "the registry lists this gateway as active with this key; sealing and anchoring run",
  unregistered:
    "this gateway is not registered in the registry (yet); frames are stored but not sealed or anchored until it is",
  suspended:
    "the registry has suspended this gateway; frames are stored but not sealed or anchored until an operator resumes it",
  revoked:
    "the registry has revoked this gateway; frames are stored but never sealed or anchored under this registration",
  key_mismatch:
    "the registry holds another key for this gateway than the local keystore; frames are stored but not sealed or anchored until the key is rotated on chain or the right keystore is installed",
};
