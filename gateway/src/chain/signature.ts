/**
 * Conversions between the signatures produced by gateway/src/chain/keys.ts and the two-word
 * `CompactSignature {r, vs}` that `VigilRegistry.anchor` takes (it saves 432 gas of calldata per
 * secp256k1 anchor at EIP-2028 prices, contracts/README.md):
 * - secp256k1 65-byte r‖s‖v → ERC-2098 compact: `vs = (v - 27) << 255 | s`;
 * - P-256 64-byte r‖s → `vs = s`.
 * High-s is NOT normalised here: a malleable signature must reach the contract and be rejected there.
 */
import { hexToBytes, type Hex } from "../core/hex.ts";

export interface CompactSignature {
  r: Hex;
  vs: Hex;
}

/** Converts a 65-byte (secp256k1) or 64-byte (P-256) signature to the anchor's two-word form. */
export function toCompactSignature(signature: Hex): CompactSignature {
  const b = hexToBytes(signature, undefined, "signature");
  const r = `0x${signature.slice(2, 66)}` as Hex;
  if (b.length === 64) return { r, vs: `0x${signature.slice(66, 130)}` };
  if (b.length !== 65) throw new RangeError(`signature: expected 64 or 65 bytes, got ${b.length}`);
  const v = b[64] ?? 0;
  if (v !== 27 && v !== 28) throw new RangeError(`signature: v must be 27 or 28, got ${v}`);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  // s ≥ 2^255 is always a high-s (malleable) secp256k1 signature: ERC-2098 cannot express it, so it is
  // refused here; keys.signSecp256k1 never produces one.
  if (s >> 255n !== 0n)
    throw new RangeError("signature: high-s (malleable) secp256k1 signature cannot be anchored");
  const vs = s | (BigInt(v - 27) << 255n);
  return { r, vs: `0x${vs.toString(16).padStart(64, "0")}` };
}
