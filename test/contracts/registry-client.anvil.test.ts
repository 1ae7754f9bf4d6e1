/**
 * The shared RegistryClient suite against the ethers client on a real anvil (`--network optimism`, so
 * P-256 goes through the RIP-7212 precompile at 0x100). One anvil per file; fresh contracts per test.
 */
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { afterAll, beforeAll } from "vitest";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { registryClientSuite } from "./registry-client.suite.ts";

let anvil: Anvil;
beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
});
afterAll(async () => {
  await anvil?.stop();
});

registryClientSuite("ethers on anvil --network optimism", async () => {
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 20;
  const deployer = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider));
  const d = await deployVigil(deployer, { adminDelaySeconds: 0, approvalThreshold: 2 });
  provider.destroy();
  const clients = await Promise.all(
    ANVIL_DEV_KEYS.slice(0, 6).map((k) =>
      EthersRegistryClient.connect({
        rpcUrl: anvil.url,
        privateKey: k,
        registry: d.contracts.VigilRegistry.address,
        releases: d.contracts.VigilReleases.address,
        pollingIntervalMs: 20,
      }),
    ),
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
    },
  };
});
