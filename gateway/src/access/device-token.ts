/**
 * Device tokens: the MQTT password of a sensor node that has a key registered in the registry
 * (SensorRegistered / SensorKeyChanged with a key type). The username is the device id (8
 * lowercase hex digits); the password is `vdt1.<expiresAt>.<signature>`, the signature the device
 * key's signature (registry encoding: secp256k1 r‖s‖v, P-256 r‖s with low s) of the EIP-712 digest of
 *
 *   DeviceToken(bytes32 gatewayId,uint32 deviceId,uint64 expiresAt)
 *
 * in the registry's domain (name "VigilRegistry", version "1", chainId, verifyingContract). The
 * key is the one the registry holds now, so rotating or revoking it on chain invalidates tokens at
 * the next refresh. Lifetime at most 24 h, like reader tokens. Sensors without a key use the
 * password file (passwords.ts).
 */
import { TypedDataEncoder, type TypedDataField } from "ethers";
import type { SensorEntry } from "../chain/registry-view.ts";
import { toEthersDomain, type VigilDomain } from "../chain/eip712.ts";
import { signDigest, verifyDigest, type DeviceKey } from "../chain/keys.ts";
import type { Hex } from "../core/hex.ts";
import { MAX_TOKEN_LIFETIME_S } from "./reader-token.ts";

export const DEVICE_TOKEN_TYPES: Record<string, TypedDataField[]> = {
  DeviceToken: [
    { name: "gatewayId", type: "bytes32" },
    { name: "deviceId", type: "uint32" },
    { name: "expiresAt", type: "uint64" },
  ],
};

const SKEW_S = 300;

export type DeviceTokenRefusal = "malformed" | "expired" | "too_long" | "no_key" | "wrong_signer";

/** The EIP-712 digest a device token signs. */
export function deviceTokenDigest(
  domain: VigilDomain,
  gatewayId: Hex,
  deviceId: number,
  expiresAt: number,
): Hex {
  return TypedDataEncoder.hash(toEthersDomain(domain), DEVICE_TOKEN_TYPES, {
    gatewayId,
    deviceId,
    expiresAt,
  }) as Hex;
}

/** A token for `deviceId` signed with its key, valid until `expiresAt` (unix seconds). */
export function mintDeviceToken(
  key: DeviceKey,
  domain: VigilDomain,
  gatewayId: Hex,
  deviceId: number,
  expiresAt: number,
): { username: string; password: string } {
  const sig = signDigest(key, deviceTokenDigest(domain, gatewayId, deviceId, expiresAt));
  return { username: deviceId.toString(16).padStart(8, "0"), password: `vdt1.${expiresAt}.${sig}` };
}

/** Whether `password` is a device token (rather than a password-file secret). */
export function isDeviceToken(password: string): boolean {
  return password.startsWith("vdt1.");
}

/** Checks a device token against the sensor's registered key at `nowSec`. */
export function verifyDeviceToken(
  domain: VigilDomain,
  gatewayId: Hex,
  deviceId: number,
  password: string,
  sensor: SensorEntry | undefined,
  nowSec: number,
): true | DeviceTokenRefusal {
  const m = /^vdt1\.(\d{1,15})\.(0x[0-9a-fA-F]{128}|0x[0-9a-fA-F]{130})$/.exec(password);
  if (!m) return "malformed";
  const expiresAt = Number(m[1]);
  if (expiresAt <= nowSec) return "expired";
  if (expiresAt > nowSec + MAX_TOKEN_LIFETIME_S + SKEW_S) return "too_long";
  if (!sensor || sensor.keyType === "none") return "no_key";
  const digest = deviceTokenDigest(domain, gatewayId, deviceId, expiresAt);
  return verifyDigest(sensor.keyType, sensor.publicKey, digest, m[2] as Hex) ? true : "wrong_signer";
}
