/**
 * What `vigil start` and `vigil doctor` ask the chain before sealing: is the RPC the chain the
 * deployment file names, is this gateway registered, and is the local key the registered one (the
 * registry rejects batches signed by any other key with `InvalidSignature`).
 */
import { Wallet } from "ethers";
import type { GatewaySigner } from "../attest/signer.ts";
import type { GatewayRecord } from "../chain/client.ts";
import type { LoadedDeployment } from "../chain/deploy.ts";
import { ChainNetworkError, RpcTimeoutError, translateEthersError } from "../chain/errors.ts";
import { EthersRegistryClient, probeProvider } from "../chain/ethers-client.ts";
import type { Hex } from "../core/hex.ts";

export interface ChainFacts {
  chainId: bigint;
  /** Latest block's timestamp, seconds since the epoch. */
  latestBlockTime: number;
  gateway: GatewayRecord;
}

function withTimeout<T>(p: Promise<T>, ms: number, url: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) => {
      t = setTimeout(() => rej(new RpcTimeoutError(url, ms)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/**
 * Reads the chain id, the latest block time and the gateway's registry record (read-only: the
 * client's key is a throwaway). Throws a ChainError (ChainNetworkError when unreachable).
 */
export async function readChainFacts(
  rpcUrl: string,
  deployment: LoadedDeployment,
  gatewayId: Hex,
  timeoutMs: number,
): Promise<ChainFacts> {
  const provider = probeProvider(rpcUrl);
  let client: EthersRegistryClient | undefined;
  try {
    return await withTimeout(
      (async () => {
        const chainId = BigInt((await provider.send("eth_chainId", [])) as string);
        const block = (await provider.send("eth_getBlockByNumber", ["latest", false])) as {
          timestamp: string;
        } | null;
        if (!block) throw new ChainNetworkError(rpcUrl, { reason: "no latest block" });
        let gateway = emptyRecord();
        if (chainId === BigInt(deployment.chainId)) {
          client = await EthersRegistryClient.connect({
            rpcUrl,
            privateKey: Wallet.createRandom().privateKey,
            registry: deployment.contracts.VigilRegistry.address,
            // Only getGateway (VigilRegistry) is called here: a file without VigilReleases (enough
            // for anchoring) is checked all the same.
            releases:
              deployment.contracts.VigilReleases?.address ?? deployment.contracts.VigilRegistry.address,
          });
          gateway = await client.getGateway(gatewayId);
        }
        return { chainId, latestBlockTime: Number(BigInt(block.timestamp)), gateway };
      })(),
      timeoutMs,
      rpcUrl,
    );
  } catch (e) {
    throw translateEthersError(e, rpcUrl, []);
  } finally {
    provider.destroy();
    await client?.close();
  }
}

function emptyRecord(): GatewayRecord {
  return {
    status: "none",
    keyType: "none",
    keyEpoch: 0,
    seq: 0n,
    head: `0x${"0".repeat(64)}`,
    signer: null,
    p256PublicKey: null,
    site: `0x${"0".repeat(64)}`,
    metadataURI: "",
  };
}

/** Why the chain would reject what this gateway seals, as one sentence with the fix; else undefined. */
export function chainProblem(
  facts: ChainFacts,
  deployment: LoadedDeployment,
  gatewayId: Hex,
  signer: GatewaySigner | undefined,
): string | undefined {
  if (facts.chainId !== BigInt(deployment.chainId))
    return `the RPC endpoint is chain ${facts.chainId} but the deployment file is for chain ${deployment.chainId}; point chain.rpcUrl at chain ${deployment.chainId} or chain.deployment at that chain's deployment file`;
  const g = facts.gateway;
  const local = signer?.publicKey.toLowerCase();
  if (g.status === "none")
    return `gateway ${gatewayId} is not registered in the registry ${deployment.contracts.VigilRegistry.address}; register it with "vigil chain register-gateway --gateway-id ${gatewayId}${signer ? ` --key-type ${signer.keyType} --public-key ${local}` : ""}" (a site operator, see "vigil chain grant-operator")`;
  if (g.status !== "active")
    return `gateway ${gatewayId} is ${g.status} in the registry, which rejects its batches; ask the site operator to resume it, or register a new gateway id`;
  if (!signer) return undefined;
  const registered = g.keyType === "p256" ? g.p256PublicKey : g.signer;
  if (g.keyType !== signer.keyType || registered?.toLowerCase() !== local)
    return `the local key (${signer.keyType} ${local}) is not the registered key (${g.keyType} ${registered}), so the registry would reject every batch; restore the registered keystore (then "vigil keys rotate" replaces it on chain if it must go), or have the site operator move the registration to this key (VigilRegistry.rotateGatewayKey)`;
  return undefined;
}
