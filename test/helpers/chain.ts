/**
 * A local chain for tests and harnesses: anvil from node_modules (stopped by its own PID), the
 * registry deployed, a site operator granted, and a gateway key created in an encrypted
 * keystore and registered. What `vigil demo` does, as one reusable step.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { id as keccakId, JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { generateKey, registrationPublicKey, type KeyType } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";

export interface LocalChain {
  anvil: Anvil;
  deployment: Deployment;
  /** `<dataDir>/deployment.json` (relative name for `chain.deployment`). */
  deploymentFile: string;
  /** Keystore `<dataDir>/gateway.key` and its passphrase. */
  passphrase: string;
  /** A funded account that pays anchor gas. */
  senderKey: string;
  stop(): Promise<void>;
}

export async function localChain(o: {
  dataDir: string;
  gatewayId: Hex;
  site?: string;
  keyType?: KeyType;
  network?: "optimism";
}): Promise<LocalChain> {
  const anvil = await startAnvil({ network: o.network ?? "optimism" });
  try {
    const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
    provider.pollingInterval = 50;
    const deployment = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0]!, provider)), {
      adminDelaySeconds: 0,
    });
    provider.destroy();
    writeFileSync(join(o.dataDir, "deployment.json"), JSON.stringify(deployment, null, 2));
    const passphrase = "local-chain-test-passphrase";
    const key = generateKey(o.keyType ?? "secp256k1");
    await writeKeystore(join(o.dataDir, "gateway.key"), key, passphrase, { N: 1 << 10 });
    const admin = await EthersRegistryClient.connect({
      rpcUrl: anvil.url,
      privateKey: ANVIL_DEV_KEYS[0]!,
      registry: deployment.contracts.VigilRegistry.address,
      releases: deployment.contracts.VigilReleases.address,
      pollingIntervalMs: 50,
    });
    const site = keccakId(`site:${o.site ?? "test-site"}`) as Hex;
    await admin.grantOperator(site, admin.account);
    await admin.registerGateway({
      gatewayId: o.gatewayId,
      site,
      keyType: key.type,
      publicKey: registrationPublicKey(key),
      metadataURI: "",
    });
    await admin.close();
    return {
      anvil,
      deployment,
      deploymentFile: "deployment.json",
      passphrase,
      senderKey: ANVIL_DEV_KEYS[1]!,
      stop: () => anvil.stop(),
    };
  } catch (e) {
    await anvil.stop();
    throw e;
  }
}
