/**
 * Gives an anvil the OP-Stack L1-fee predeploys: the real GasPriceOracle and L1Block runtime code
 * (fixtures/op-predeploys.json, from @eth-optimism/contracts-bedrock 0.17.3, MIT) installed with
 * anvil_setCode, and L1Block's fee parameters set with anvil_setStorageAt (slots from the artifacts'
 * storage layout). `anvil --network optimism` has the P-256 precompile but not these contracts.
 */
import { readFileSync } from "node:fs";

interface Predeploy {
  address: string;
  deployedBytecode: string;
  storage: { label: string; slot: string; offset: number; type: string }[];
}
const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/op-predeploys.json", import.meta.url), "utf8"),
) as {
  GasPriceOracle: Predeploy;
  L1Block: Predeploy;
};

/** L1 fee parameters (defaults: OP Mainnet's scalars, an L1 base fee of 5 gwei, a blob base fee of 1 gwei). */
export interface L1FeeParams {
  l1BaseFee: bigint;
  blobBaseFee: bigint;
  baseFeeScalar: number;
  blobBaseFeeScalar: number;
  /** Fjord fee formula (FastLZ-compressed size); false = Ecotone (calldata gas). Default true. */
  fjord: boolean;
}

export const DEFAULT_L1_FEE: L1FeeParams = {
  l1BaseFee: 5_000_000_000n,
  blobBaseFee: 1_000_000_000n,
  baseFeeScalar: 5227,
  blobBaseFeeScalar: 1_014_213,
  fjord: true,
};

const word = (v: bigint): string => `0x${v.toString(16).padStart(64, "0")}`;

function slotOf(p: Predeploy, label: string): { slot: bigint; offset: number } {
  const s = p.storage.find((x) => x.label === label);
  if (!s) throw new Error(`no storage slot ${label}`);
  return { slot: BigInt(s.slot), offset: s.offset };
}

/** Installs GasPriceOracle + L1Block at their predeploy addresses on the anvil at `url`. */
export async function installOpPredeploys(url: string, p: Partial<L1FeeParams> = {}): Promise<L1FeeParams> {
  const o = { ...DEFAULT_L1_FEE, ...p };
  const rpc = async (method: string, params: unknown[]): Promise<unknown> => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    const j = (await r.json()) as { error?: { message: string }; result?: unknown };
    if (j.error) throw new Error(`${method}: ${j.error.message}`);
    return j.result;
  };
  const { GasPriceOracle: gpo, L1Block: l1 } = fixture;
  await rpc("anvil_setCode", [gpo.address, gpo.deployedBytecode]);
  await rpc("anvil_setCode", [l1.address, l1.deployedBytecode]);
  const set = (addr: string, slot: bigint, v: bigint): Promise<unknown> =>
    rpc("anvil_setStorageAt", [addr, word(slot), word(v)]);
  // GasPriceOracle slot 0: isEcotone (byte 0), isFjord (byte 1).
  const eco = slotOf(gpo, "isEcotone");
  const fj = slotOf(gpo, "isFjord");
  await set(
    gpo.address,
    eco.slot,
    (1n << BigInt(8 * eco.offset)) | ((o.fjord ? 1n : 0n) << BigInt(8 * fj.offset)),
  );
  // L1Block: basefee, blobBaseFee, and the packed slot of sequenceNumber / blobBaseFeeScalar / baseFeeScalar.
  await set(l1.address, slotOf(l1, "basefee").slot, o.l1BaseFee);
  await set(l1.address, slotOf(l1, "blobBaseFee").slot, o.blobBaseFee);
  const bs = slotOf(l1, "baseFeeScalar");
  const bbs = slotOf(l1, "blobBaseFeeScalar");
  await set(
    l1.address,
    bs.slot,
    (BigInt(o.baseFeeScalar) << BigInt(8 * bs.offset)) |
      (BigInt(o.blobBaseFeeScalar) << BigInt(8 * bbs.offset)),
  );
  return o;
}
