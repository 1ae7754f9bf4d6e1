/**
 * The L1 data fee of OP-Stack chains (OP Mainnet, Base, …): every L2 transaction also pays for
 * publishing its bytes on L1, charged on top of L2 gas and not visible in `gasUsed`. The
 * GasPriceOracle predeploy (0x420000000000000000000000000000000000000F, OP Stack specs "Predeploys")
 * computes it: `getL1Fee(bytes unsignedTx)`. op-geth also reports it in receipts (`l1Fee`); the sender
 * prefers the receipt field and asks the oracle otherwise.
 */
import { Interface } from "ethers";
import type { Hex } from "../core/hex.ts";
import type { RpcClient } from "./rpc.ts";
import type { L1FeeSource } from "./tx-sender.ts";

/** GasPriceOracle predeploy address (OP Stack). */
export const GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000f";

const gpo = new Interface(["function getL1Fee(bytes _data) view returns (uint256)"]);

/** L1FeeSource over the GasPriceOracle predeploy. */
export class GasPriceOracleL1Fee implements L1FeeSource {
  constructor(private readonly rpc: RpcClient) {}

  async l1Fee(unsignedTx: Hex, blockTag: string): Promise<bigint> {
    const out = await this.rpc.request<string>("eth_call", [
      { to: GAS_PRICE_ORACLE, data: gpo.encodeFunctionData("getL1Fee", [unsignedTx]) },
      blockTag,
    ]);
    return BigInt(gpo.decodeFunctionResult("getL1Fee", out)[0] as bigint);
  }
}

/**
 * The chain's L1 fee source: the GasPriceOracle when the predeploy has code (an OP-Stack chain),
 * otherwise null (no L1 data fee).
 */
export async function detectL1FeeSource(rpc: RpcClient): Promise<L1FeeSource | null> {
  const code = await rpc.request<string>("eth_getCode", [GAS_PRICE_ORACLE, "latest"]);
  return code && code !== "0x" ? new GasPriceOracleL1Fee(rpc) : null;
}
