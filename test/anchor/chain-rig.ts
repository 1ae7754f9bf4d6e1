/**
 * A real chain for anchoring tests and the anchor benchmark: anvil started from node_modules and
 * stopped by its PID, the registry deployed, a site operator, gateways registered; and the gateway
 * side — a store, a sealer and an AnchorService over the real RPC path (connectAnchorChain).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil, type AnvilOptions } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { generateKey, type KeyType } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import type { FrameStore } from "../../gateway/src/store/types.ts";
import { AnchorService, type AnchorServiceOptions } from "../../gateway/src/anchor/service.ts";
import {
  DEFAULT_FEE_CAPS,
  connectAnchorChain,
  type RpcAnchorChain,
  type RpcAnchorChainOptions,
} from "../../gateway/src/anchor/chain.ts";
import { record } from "../store/abstract.ts";

export const SITE_1 = ("0x" + "51".repeat(32)) as Hex;

export interface ChainRig {
  anvil: Anvil;
  url: string;
  deployment: Deployment;
  deploymentFile: string;
  /** Default admin and operator of SITE_1 (anvil account #0). */
  admin: EthersRegistryClient;
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** Registers a new gateway at `site` (default SITE_1) with a fresh key. */
  registerGateway(gatewayId: Hex, keyType?: KeyType, site?: Hex): Promise<GatewaySigner>;
  stop(): Promise<void>;
}

export async function jsonRpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const j = (await r.json()) as { error?: { message: string }; result?: T };
  if (j.error) throw new Error(`${method}: ${j.error.message}`);
  return j.result as T;
}

export async function startChainRig(dir: string, anvilOpts: AnvilOptions = {}): Promise<ChainRig> {
  const anvil = await startAnvil(anvilOpts);
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
  provider.pollingInterval = 20;
  const deployment = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider)), {
    adminDelaySeconds: 0,
  });
  provider.destroy();
  const deploymentFile = join(dir, "deployment.json");
  writeFileSync(deploymentFile, JSON.stringify(deployment));
  const admin = await EthersRegistryClient.connect({
    rpcUrl: anvil.url,
    privateKey: ANVIL_DEV_KEYS[0],
    registry: deployment.contracts.VigilRegistry.address,
    releases: deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });
  await admin.grantOperator(SITE_1, admin.account);
  const rig: ChainRig = {
    anvil,
    url: anvil.url,
    deployment,
    deploymentFile,
    admin,
    rpc: (method, params = []) => jsonRpc(rig.url, method, params),
    async registerGateway(gatewayId, keyType = "secp256k1", site = SITE_1) {
      const signer = new GatewaySigner(generateKey(keyType));
      await admin.registerGateway({ gatewayId, site, keyType, publicKey: signer.publicKey, metadataURI: "" });
      return signer;
    },
    async stop() {
      await admin.close();
      await rig.anvil.stop();
    },
  };
  return rig;
}

export interface Pipeline {
  store: FrameStore;
  sealer: BatchSealer;
  /** Appends `n` frames of the pipeline's device. */
  ingest(n: number): Promise<void>;
  sealAll(): Promise<void>;
  /** Connection options of the real RPC path (override per test). */
  chainOptions(o?: Partial<RpcAnchorChainOptions>): RpcAnchorChainOptions;
  service(o?: Partial<AnchorServiceOptions>, chain?: Partial<RpcAnchorChainOptions>): AnchorService;
  /** The connections the services opened (last one is current). */
  chains: RpcAnchorChain[];
}

export async function pipeline(
  rig: ChainRig,
  signer: GatewaySigner,
  gatewayId: Hex,
  o: { maxLeaves?: number; device?: number; store?: FrameStore; senderKey?: string } = {},
): Promise<Pipeline> {
  const store = o.store ?? new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  const device = o.device ?? 9;
  let seq = store.lastSeq(device) === undefined ? 0 : store.lastSeq(device)! + 1;
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId,
    domain: rig.admin.domain(),
    maxLeaves: o.maxLeaves ?? 10,
  });
  const p: Pipeline = {
    store,
    sealer,
    chains: [],
    async ingest(n) {
      await Promise.all(Array.from({ length: n }, () => store.append(record(device, seq++))));
    },
    async sealAll() {
      while (await sealer.sealNow());
    },
    chainOptions: (c = {}) => ({
      rpcUrls: [rig.url],
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      deployBlock: rig.deployment.deployBlock,
      senderPrivateKey: o.senderKey ?? ANVIL_DEV_KEYS[1],
      caps: DEFAULT_FEE_CAPS,
      confirmations: 3,
      pollMs: 20,
      healthCheckIntervalMs: 0,
      bumpAfterBlocks: 2,
      ...c,
    }),
    service: (s = {}, c = {}) =>
      new AnchorService({
        store,
        gatewayId,
        connect: async () => {
          const ch = await connectAnchorChain(p.chainOptions(c));
          p.chains.push(ch);
          return ch;
        },
        confirmations: c.confirmations ?? 3,
        intervalMs: 100,
        backoff: { initialMs: 50, maxMs: 400 },
        random: () => 0.5,
        ...s,
      }),
  };
  return p;
}
