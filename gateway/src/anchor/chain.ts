/**
 * What the anchoring service needs from the chain: a subset of `RegistryClient` (chain/client.ts)
 * plus an optional log lookup, and a connector for the real chain (ethers v6).
 */
import { InternalError } from "../core/errors.ts";
import { Interface, JsonRpcProvider } from "ethers";
import { VigilRegistryArtifact } from "../../../contracts/artifacts/index.ts";
import type { RegistryClient } from "../chain/client.ts";
import { EthersRegistryClient } from "../chain/ethers-client.ts";
import type { Hex } from "../core/hex.ts";

export interface AnchorChain extends Pick<
  RegistryClient,
  "chainId" | "registryAddress" | "anchor" | "getHead" | "close"
> {
  /** Several consecutive batches in one transaction (optional). */
  anchorMany?: RegistryClient["anchorMany"];
  /**
   * Finds the BatchAnchored event of (gatewayId, seq): used when a batch turns out to be
   * anchored already (sent just before a crash) to record its transaction anyway.
   */
  findAnchor?(
    gatewayId: Hex,
    seq: bigint,
  ): Promise<{ txHash: Hex; blockNumber: number; headerHash: Hex } | null>;
}

const registryIface = new Interface(VigilRegistryArtifact.abi as never);

/** Adds a getLogs-based `findAnchor` to a registry client. */
export function withLogLookup(client: RegistryClient, provider: JsonRpcProvider): AnchorChain {
  const ev = registryIface.getEvent("BatchAnchored");
  if (!ev) throw new InternalError("registry ABI has no BatchAnchored event");
  return {
    chainId: client.chainId,
    registryAddress: client.registryAddress,
    anchor: (h, s) => client.anchor(h, s),
    anchorMany: (items) => client.anchorMany(items),
    getHead: (g) => client.getHead(g),
    async close() {
      provider.destroy();
      await client.close();
    },
    async findAnchor(gatewayId, seq) {
      const logs = await provider.getLogs({
        address: client.registryAddress,
        topics: [ev.topicHash, gatewayId.toLowerCase(), "0x" + seq.toString(16).padStart(64, "0")],
        fromBlock: 0,
        toBlock: "latest",
      });
      const l = logs[0];
      if (!l) return null;
      const parsed = registryIface.parseLog(l);
      const headerHash = String(parsed?.args.getValue("headerHash") ?? "").toLowerCase() as Hex;
      return { txHash: l.transactionHash as Hex, blockNumber: l.blockNumber, headerHash };
    },
  };
}

export interface EthersAnchorChainOptions {
  rpcUrl: string;
  /** Key of the account paying gas (any funded account; the gateway key signs the batches). */
  senderPrivateKey: string;
  registry: string;
  releases: string;
  /** Confirmations the client waits for after inclusion. */
  confirmations: number;
  pollingIntervalMs?: number;
}

/** Connects to a real chain: ethers registry client + log lookup. */
export async function connectEthersAnchorChain(o: EthersAnchorChainOptions): Promise<AnchorChain> {
  const client = await EthersRegistryClient.connect({
    rpcUrl: o.rpcUrl,
    privateKey: o.senderPrivateKey,
    registry: o.registry,
    releases: o.releases,
    confirmations: o.confirmations,
    pollingIntervalMs: o.pollingIntervalMs ?? 250,
  });
  const provider = new JsonRpcProvider(o.rpcUrl, client.chainId, { staticNetwork: true, batchMaxCount: 1 });
  return withLogLookup(client, provider);
}
