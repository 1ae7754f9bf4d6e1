/**
 * The shared RegistryClient suite against the ethers client over an RPC pool
 * (EthersRegistryClient.overRpc, chain/pool-provider.ts) on a real anvil: every read, send and
 * contract revert behaves as over one URL (registry-client.anvil.test.ts). The pool's first
 * endpoint is a closed port, so every request is served after a failover.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { afterAll, beforeAll } from "vitest";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil } from "../../gateway/src/chain/deploy.ts";
import { CONTRACT_IFACES, EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { registryClientSuite } from "./registry-client.suite.ts";

let anvil: Anvil;
let dead: string;
beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  dead = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  await new Promise<void>((ok) => s.close(() => ok()));
});
afterAll(async () => {
  await anvil?.stop();
});

registryClientSuite("ethers over an RPC pool (first endpoint dead) on anvil --network optimism", async () => {
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 20;
  const deployer = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider));
  const d = await deployVigil(deployer, { adminDelaySeconds: 0, approvalThreshold: 2 });
  provider.destroy();
  const pool = new RpcPool({
    urls: [dead, anvil.url],
    expectedChainId: 31337n,
    healthCheckIntervalMs: 0,
    ifaces: CONTRACT_IFACES,
  });
  const clients = ANVIL_DEV_KEYS.slice(0, 6).map((k) =>
    EthersRegistryClient.overRpc({
      rpc: pool,
      chainId: 31337n,
      privateKey: k,
      registry: d.contracts.VigilRegistry.address,
      releases: d.contracts.VigilReleases.address,
      pollingIntervalMs: 20,
    }),
  );
  const [admin, ...others] = clients as [EthersRegistryClient, ...EthersRegistryClient[]];
  return {
    admin,
    others,
    advanceTime: async (s: bigint) => {
      await admin.rpc("evm_increaseTime", [Number(s)]);
      await admin.rpc("evm_mine", []);
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
      pool.close();
    },
  };
});
