/**
 * Conversions between the JSON form of a batch header kept in the store and receipts
 * (safe integers, hex) and the EIP-712 form of chain/eip712.ts (bigints).
 */
import { type BatchHeader, type VigilDomain, vigilDomain } from "../chain/eip712.ts";
import { type Hex } from "../core/hex.ts";
import type { BatchHeaderJson, Eip712DomainJson } from "../store/types.ts";

export function toEip712Header(h: BatchHeaderJson): BatchHeader {
  return {
    gatewayId: h.gatewayId as Hex,
    seq: BigInt(h.seq),
    prevHead: h.prevHead as Hex,
    root: h.root as Hex,
    leafCount: h.leafCount,
    firstTimestamp: BigInt(h.firstTimestamp),
    lastTimestamp: BigInt(h.lastTimestamp),
    modelHash: h.modelHash as Hex,
  };
}

export function toDomain(d: Eip712DomainJson): VigilDomain {
  if (d.name !== "VigilRegistry" || d.version !== "1")
    throw new RangeError(`domain must be VigilRegistry v1, is ${d.name} v${d.version}`);
  return vigilDomain(BigInt(d.chainId), d.verifyingContract);
}

export function domainJson(d: VigilDomain): Eip712DomainJson {
  return {
    name: d.name,
    version: d.version,
    chainId: Number(d.chainId),
    verifyingContract: d.verifyingContract.toLowerCase(),
  };
}
