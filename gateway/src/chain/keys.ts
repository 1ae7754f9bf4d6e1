/**
 * Raw device-key signing for the two key types Vigil registers on chain (no storage, no encryption:
 * an encrypted keystore builds on top of this module).
 *
 * - secp256k1: signatures are 65 bytes r‖s‖v with v = 27/28 and low s, verified by `ecrecover`.
 * - P-256 (secure elements, TPMs): signatures are 64 bytes r‖s with low s (OpenZeppelin's `P256.verify`
 *   rejects s > n/2), verified by the RIP-7212 precompile at 0x100 (or OpenZeppelin's Solidity fallback).
 *
 * Digests are signed as given (`prehash: false`): noble v2 would otherwise SHA-256 the 32-byte EIP-712
 * digest again and the chain would reject the signature.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { p256 } from "@noble/curves/nist.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { getAddress } from "ethers";
import { bytesToHex, hexToBytes, type Hex } from "../core/hex.ts";

export type KeyType = "secp256k1" | "p256";

/** Numeric key type as in the contract's `KeyType` enum. */
export const KEY_TYPE_CODE: Record<KeyType, number> = { secp256k1: 1, p256: 2 };

/** A raw device private key (32 bytes). */
export interface DeviceKey {
  type: KeyType;
  privateKey: Uint8Array;
}

/** P-256 public key coordinates, 32 bytes each. */
export interface P256PublicKey {
  x: Hex;
  y: Hex;
}

function secretBytes(privateKey: Uint8Array | Hex): Uint8Array {
  const b = typeof privateKey === "string" ? hexToBytes(privateKey, 32, "privateKey") : privateKey;
  if (b.length !== 32) throw new RangeError(`privateKey: expected 32 bytes, got ${b.length}`);
  return b;
}

function digestBytes(digest: Uint8Array | Hex): Uint8Array {
  const b = typeof digest === "string" ? hexToBytes(digest, 32, "digest") : digest;
  if (b.length !== 32) throw new RangeError(`digest: expected 32 bytes, got ${b.length}`);
  return b;
}

/** Generates a new random key of `type` (from the platform CSPRNG). */
export function generateKey(type: KeyType): DeviceKey {
  const privateKey = type === "secp256k1" ? secp256k1.utils.randomSecretKey() : p256.utils.randomSecretKey();
  return { type, privateKey };
}

/** Wraps an existing 32-byte private key, checking it is valid for the curve. */
export function importKey(type: KeyType, privateKey: Uint8Array | Hex): DeviceKey {
  const b = secretBytes(privateKey);
  const ok = type === "secp256k1" ? secp256k1.utils.isValidSecretKey(b) : p256.utils.isValidSecretKey(b);
  if (!ok) throw new RangeError(`privateKey: not a valid ${type} secret key`);
  return { type, privateKey: b };
}

/** The Ethereum address (EIP-55 checksummed) of a secp256k1 private key. */
export function secp256k1Address(privateKey: Uint8Array | Hex): Hex {
  const pub = secp256k1.getPublicKey(secretBytes(privateKey), false); // 0x04 ‖ x ‖ y
  return getAddress(bytesToHex(keccak_256(pub.subarray(1)).subarray(12))) as Hex;
}

/** The P-256 public key (x, y) of a private key, as registered on chain. */
export function p256PublicKey(privateKey: Uint8Array | Hex): P256PublicKey {
  const pub = p256.getPublicKey(secretBytes(privateKey), false); // 0x04 ‖ x ‖ y
  return { x: bytesToHex(pub.subarray(1, 33)), y: bytesToHex(pub.subarray(33, 65)) };
}

/**
 * The public key in the registry's encoding: 20-byte address for secp256k1, 64-byte x‖y for P-256.
 */
export function registrationPublicKey(key: DeviceKey): Hex {
  if (key.type === "secp256k1") return secp256k1Address(key.privateKey).toLowerCase() as Hex;
  const { x, y } = p256PublicKey(key.privateKey);
  return `0x${x.slice(2)}${y.slice(2)}`;
}

/**
 * Signs a 32-byte digest with secp256k1.
 * @returns 65 bytes r‖s‖v, v ∈ {27, 28}, s ≤ n/2.
 */
export function signSecp256k1(digest: Uint8Array | Hex, privateKey: Uint8Array | Hex): Hex {
  // format "recovered" puts the recovery byte FIRST: rec ‖ r ‖ s.
  const sig = secp256k1.sign(digestBytes(digest), secretBytes(privateKey), {
    prehash: false,
    lowS: true,
    format: "recovered",
  });
  const out = new Uint8Array(65);
  out.set(sig.subarray(1, 65), 0);
  out[64] = 27 + (sig[0] ?? 0);
  return bytesToHex(out);
}

/**
 * Signs a 32-byte digest with P-256.
 * @returns 64 bytes r‖s with s ≤ n/2.
 */
export function signP256(digest: Uint8Array | Hex, privateKey: Uint8Array | Hex): Hex {
  return bytesToHex(p256.sign(digestBytes(digest), secretBytes(privateKey), { prehash: false, lowS: true }));
}

/** Signs a digest with the device key, in the signature encoding the registry expects for its type. */
export function signDigest(key: DeviceKey, digest: Uint8Array | Hex): Hex {
  return key.type === "secp256k1" ? signSecp256k1(digest, key.privateKey) : signP256(digest, key.privateKey);
}

/** Off-chain verification of a signature made by {@link signDigest} (same rules as the contract). */
export function verifyDigest(
  type: KeyType,
  publicKey: Hex,
  digest: Uint8Array | Hex,
  signature: Hex,
): boolean {
  const d = digestBytes(digest);
  const sig = hexToBytes(signature, undefined, "signature");
  try {
    if (type === "secp256k1") {
      if (sig.length !== 65) return false;
      const v = sig[64] ?? 0;
      if (v !== 27 && v !== 28) return false;
      const rec = new Uint8Array(65);
      rec[0] = v - 27;
      rec.set(sig.subarray(0, 64), 1);
      const pub = secp256k1.recoverPublicKey(rec, d, { prehash: false });
      const point = secp256k1.Point.fromBytes(pub).toBytes(false);
      const addr = bytesToHex(keccak_256(point.subarray(1)).subarray(12));
      return (
        addr.toLowerCase() === publicKey.toLowerCase() &&
        secp256k1.verify(sig.subarray(0, 64), d, pub, { prehash: false, lowS: true })
      );
    }
    if (sig.length !== 64) return false;
    const pub = new Uint8Array(65);
    pub[0] = 4;
    pub.set(hexToBytes(publicKey, 64, "publicKey"), 1);
    return p256.verify(sig, d, pub, { prehash: false, lowS: true });
  } catch {
    return false;
  }
}
