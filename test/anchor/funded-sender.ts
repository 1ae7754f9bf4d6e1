/**
 * The tx-sender tests' sender: a fresh account funded with 100 ETH on anvil (`rpc` calls the
 * node), with the tests' fee caps (50 gwei, tip 2 gwei), a bump after 2 blocks and 10 ms polls.
 */
import { Wallet } from "ethers";
import type { RpcClient } from "../../gateway/src/chain/rpc.ts";
import { TxSender, type TxSenderOptions } from "../../gateway/src/chain/tx-sender.ts";

export const GWEI = 1_000_000_000n;

export async function fundedSender(
  rpc: (method: string, params: unknown[]) => Promise<unknown>,
  pool: RpcClient,
  o: Partial<TxSenderOptions> = {},
): Promise<{ s: TxSender; key: string }> {
  const wallet = Wallet.createRandom();
  await rpc("anvil_setBalance", [wallet.address, "0x56bc75e2d63100000"]); // 100 ETH
  const s = new TxSender({
    rpc: pool,
    privateKey: wallet.privateKey,
    chainId: 31337n,
    caps: { maxFeePerGas: 50n * GWEI, maxPriorityFeePerGas: 2n * GWEI },
    bumpAfterBlocks: 2,
    pollMs: 10,
    ...o,
  });
  return { s, key: wallet.privateKey };
}
