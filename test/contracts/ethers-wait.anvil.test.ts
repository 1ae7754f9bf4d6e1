/**
 * The ethers client's wait for a sent transaction is bounded (a CLI must not hang): a transaction
 * the node dropped from its pool, and one never mined, end in TxNotMinedError naming the hash.
 * Real anvil with automine off; anvil_dropTransaction evicts the transaction.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { TxNotMinedError } from "../../gateway/src/chain/errors.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { jsonRpc } from "../anchor/chain-rig.ts";

const SITE = ("0x" + "51".repeat(32)) as Hex;
let anvil: Anvil;
let d: Deployment;
const rpc = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => jsonRpc<T>(anvil.url, m, p);

beforeAll(async () => {
  anvil = await startAnvil();
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
  provider.pollingInterval = 20;
  d = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider)), { adminDelaySeconds: 0 });
  provider.destroy();
});
afterAll(async () => {
  await anvil?.stop();
});
afterEach(async () => {
  await rpc("evm_setAutomine", [true]);
});

const client = (minedTimeoutMs?: number): Promise<EthersRegistryClient> =>
  EthersRegistryClient.connect({
    rpcUrl: anvil.url,
    privateKey: ANVIL_DEV_KEYS[0],
    registry: d.contracts.VigilRegistry.address,
    releases: d.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
    ...(minedTimeoutMs !== undefined ? { minedTimeoutMs } : {}),
  });

/** The hash of the one transaction waiting in anvil's pool. */
async function pendingHash(): Promise<string> {
  let hash: string | undefined;
  await vi.waitFor(
    async () => {
      const pool = await rpc<{ pending: Record<string, Record<string, { hash: string }>> }>("txpool_content");
      hash = Object.values(Object.values(pool.pending)[0] ?? {})[0]?.hash;
      expect(hash).toBeDefined();
    },
    { timeout: 20_000, interval: 10 },
  );
  return hash!;
}

describe("EthersRegistryClient waits for a transaction, boundedly", () => {
  it("error: a transaction the node dropped from its pool ends in TxNotMinedError naming it, not a wait forever", async () => {
    const c = await client();
    try {
      await rpc("evm_setAutomine", [false]);
      const p = c.grantOperator(SITE, "0x00000000000000000000000000000000000000a1");
      p.catch(() => {});
      const hash = await pendingHash();
      await rpc("anvil_dropTransaction", [hash]);
      await rpc("evm_mine");
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(TxNotMinedError);
      expect((e as TxNotMinedError).code).toBe("CHAIN_TX_NOT_MINED");
      expect((e as TxNotMinedError).message).toContain(hash);
      expect((e as TxNotMinedError).message).toMatch(/dropped it from its transaction pool/);
      // The nonce manager was reset: the next command is mined (no nonce gap).
      await rpc("evm_setAutomine", [true]);
      await expect(
        c.grantOperator(SITE, "0x00000000000000000000000000000000000000a2"),
      ).resolves.toBeDefined();
    } finally {
      await c.close();
    }
  });

  it("error: a transaction still pending after minedTimeoutMs ends in TxNotMinedError (it may still be mined)", async () => {
    const c = await client(300);
    try {
      await rpc("evm_setAutomine", [false]);
      const e = await c.grantOperator(SITE, "0x00000000000000000000000000000000000000a3").then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(TxNotMinedError);
      expect((e as TxNotMinedError).message).toMatch(/not mined within 300 ms; it may still be mined/);
      expect(await pendingHash()).toBe((e as TxNotMinedError).txHash);
    } finally {
      await rpc("evm_mine");
      await c.close();
    }
  });
});
