import { keccak256 } from "../core/keccak.ts";
import { bytesToHex, type Hex } from "../core/hex.ts";
import type { GatewayConfig } from "./schema.ts";

/**
 * The gateway's bytes32 registry id: `attest.gatewayId` when set, else
 * `keccak256("vigil-gateway:" + attest.gatewayName)` (UTF-8), lowercase hex.
 */
export function gatewayIdOf(config: Pick<GatewayConfig, "attest">): Hex {
  return (config.attest.gatewayId?.toLowerCase() ??
    bytesToHex(keccak256(new TextEncoder().encode(`vigil-gateway:${config.attest.gatewayName}`)))) as Hex;
}
