import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { keccak256 } from "../core/keccak.ts";
import { bytesToHex, type Hex } from "../core/hex.ts";

/**
 * The gateway's bytes32 registry id: `attest.gatewayId` when set, else
 * `keccak256("vigil-gateway:" + attest.gatewayName)` (UTF-8), lowercase hex.
 */
export function gatewayIdOf(config: { attest: { gatewayId: string | null; gatewayName: string } }): Hex {
  return (config.attest.gatewayId?.toLowerCase() ??
    bytesToHex(keccak256(new TextEncoder().encode(`vigil-gateway:${config.attest.gatewayName}`)))) as Hex;
}

/**
 * A site's bytes32 registry id as every command takes `--site`: a 0x bytes32 as given (lower
 * case), else `keccak256("site:" + name)` (UTF-8).
 */
export function siteIdOf(site: string): Hex {
  return (
    /^0x[0-9a-fA-F]{64}$/.test(site)
      ? site.toLowerCase()
      : bytesToHex(keccak256(new TextEncoder().encode(`site:${site}`)))
  ) as Hex;
}

/**
 * A default gateway name distinct per box and stable across restarts: `gw-` + 12 hex digits of
 * sha256("vigil-gateway-name:" + machine id) (systemd's /etc/machine-id, hashed with an
 * application key as machine-id(5) asks, never shown raw), else the sanitised host name. Two
 * gateways on default configs then get different ids and both register.
 */
export function defaultGatewayName(
  read: (p: string) => string = (p) => readFileSync(p, "utf8"),
  host: string = hostname(),
): string {
  for (const p of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    let id: string;
    try {
      id = read(p).trim();
    } catch {
      continue; // not systemd (a container, macOS): try the next source
    }
    if (/^[0-9a-f]{32}$/i.test(id))
      return `gw-${createHash("sha256").update(`vigil-gateway-name:${id.toLowerCase()}`).digest("hex").slice(0, 12)}`;
  }
  const h = host.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 61);
  return h ? `gw-${h}` : "gw-1";
}
