/**
 * Reader tokens: the MQTT password of a dashboard. The MQTT username is the reader's Ethereum
 * address; the password is `vrt1.<expiresAt>.<signature>`, where the signature is the reader key's
 * EIP-712 signature of
 *
 *   ReaderToken(bytes32 gatewayId,address reader,uint64 expiresAt)
 *
 * in the registry's domain (name "VigilRegistry", version "1", chainId, verifyingContract = the
 * registry). So a token is bound to one chain, one registry and one gateway: replayed on another
 * gateway or chain it recovers to another address and is refused. `expiresAt` (unix seconds) may be
 * at most 24 h ahead of the verifier's clock. `vigil token` mints one.
 */
import { TypedDataEncoder, Wallet, getAddress, verifyTypedData, type TypedDataField } from "ethers";
import { toEthersDomain, type VigilDomain } from "../chain/eip712.ts";
import { isAddress, type Hex } from "../core/hex.ts";

export const READER_TOKEN_TYPES: Record<string, TypedDataField[]> = {
  ReaderToken: [
    { name: "gatewayId", type: "bytes32" },
    { name: "reader", type: "address" },
    { name: "expiresAt", type: "uint64" },
  ],
};

/** Longest token lifetime accepted, seconds (24 h). */
export const MAX_TOKEN_LIFETIME_S = 86_400;
/** Clock error tolerated between the minting machine and the gateway, seconds. */
const SKEW_S = 300;

export type TokenRefusal = "malformed" | "expired" | "too_long" | "wrong_signer";

/** Mints a token for `privateKey` (the reader's key) valid until `expiresAt` (unix seconds). */
export async function mintReaderToken(
  privateKey: string,
  domain: VigilDomain,
  gatewayId: Hex,
  expiresAt: number,
): Promise<{ username: Hex; password: string }> {
  const w = new Wallet(privateKey);
  const sig = await w.signTypedData(toEthersDomain(domain), READER_TOKEN_TYPES, {
    gatewayId,
    reader: w.address,
    expiresAt,
  });
  return { username: w.address.toLowerCase() as Hex, password: `vrt1.${expiresAt}.${sig}` };
}

/** The EIP-712 digest a token signs (for other implementations' test vectors). */
export function readerTokenDigest(
  domain: VigilDomain,
  gatewayId: Hex,
  reader: string,
  expiresAt: number,
): string {
  return TypedDataEncoder.hash(toEthersDomain(domain), READER_TOKEN_TYPES, { gatewayId, reader, expiresAt });
}

/**
 * Checks a token presented by `username` at `nowSec`. Returns the reader (lower-case address) and
 * expiry, or why it is refused.
 */
export function verifyReaderToken(
  domain: VigilDomain,
  gatewayId: Hex,
  username: string,
  password: string,
  nowSec: number,
): { reader: Hex; expiresAt: number } | TokenRefusal {
  const m = /^vrt1\.(\d{1,15})\.(0x[0-9a-fA-F]{130})$/.exec(password);
  if (!m || !isAddress(username)) return "malformed";
  const expiresAt = Number(m[1]);
  if (expiresAt <= nowSec) return "expired";
  if (expiresAt > nowSec + MAX_TOKEN_LIFETIME_S + SKEW_S) return "too_long";
  // v is 27 or 28 (README, "Who may read"); ethers would also take 0/1 and EIP-155 values.
  const v = Number.parseInt(m[2]!.slice(130), 16);
  if (v !== 27 && v !== 28) return "malformed";
  let signer: string;
  try {
    signer = verifyTypedData(
      toEthersDomain(domain),
      READER_TOKEN_TYPES,
      // Any case (README): lowered first, since getAddress refuses a mixed case that is not the
      // EIP-55 checksum.
      { gatewayId, reader: getAddress(username.toLowerCase()), expiresAt },
      m[2]!,
    );
  } catch {
    return "malformed";
  }
  if (signer.toLowerCase() !== username.toLowerCase()) return "wrong_signer";
  return { reader: username.toLowerCase() as Hex, expiresAt };
}
