/**
 * {@link RegistryClient} over ethers v6: one EVM JSON-RPC endpoint ({@link EthersRegistryClient.connect})
 * or an RPC pool with failover ({@link EthersRegistryClient.overRpc}, pool-provider.ts). Every ethers
 * error is translated into a typed ChainError here; on a nonce error the nonce manager is reset so
 * the next send refetches.
 */
import {
  Contract,
  Interface,
  JsonRpcProvider,
  type JsonRpcApiProvider,
  Network,
  NonceManager,
  Wallet,
  getAddress,
  type ContractTransactionResponse,
  type TransactionReceipt,
} from "ethers";
import { VigilRegistryArtifact, VigilReleasesArtifact } from "../../../contracts/artifacts/index.ts";
import { KEY_TYPE_CODE, type KeyType } from "./keys.ts";
import {
  DEVICE_STATUS,
  KEY_TYPES,
  RELEASE_KINDS,
  RELEASE_STATUS,
  operatorRoleId,
  roleId,
  type AnchorResult,
  type DeviceStatus,
  type GatewayRecord,
  type RegisterGatewayArgs,
  type RegistryClient,
  type ReleaseInput,
  type ReleaseKind,
  type ReleaseRecord,
  type RoleName,
  type SensorRecord,
  type TxResult,
} from "./client.ts";
import { headerTuple, vigilDomain, type BatchHeader, type VigilDomain } from "./eip712.ts";
import { type Hex } from "../core/hex.ts";
import { ChainStateError, TxNotMinedError, translateEthersError } from "./errors.ts";
import { toCompactSignature } from "./signature.ts";
import { RpcClientProvider } from "./pool-provider.ts";
import type { RpcClient } from "./rpc.ts";

export interface EthersClientOptions extends EthersClientSettings {
  rpcUrl: string;
  /**
   * The chain id when the caller knows it (a deployment file): connect() then makes no request,
   * so a client can be built while the RPC is down and fail only when used. Default: asked with
   * eth_chainId.
   */
  chainId?: bigint;
}

/** {@link EthersRegistryClient.overRpc}: the client over an RPC pool. */
export interface EthersPoolClientOptions extends EthersClientSettings {
  /**
   * The connection (rpc.ts RpcPool), not closed by `close()`: its owner closes it. It must decode
   * reverts with {@link CONTRACT_IFACES} (its `ifaces` option), as it translates error answers.
   */
  rpc: RpcClient;
  /** The deployment's chain id: no request is made before the first call. */
  chainId: bigint;
}

/** What both ways of building the client share. */
export interface EthersClientSettings {
  /** Private key of the sending account (any funded account; the device key signs the batches). */
  privateKey: string;
  registry: string;
  releases: string;
  /** Confirmations to wait for (default 1). */
  confirmations?: number;
  /** Receipt polling interval (default 250 ms; use ~50 for anvil). */
  pollingIntervalMs?: number;
  /**
   * Longest wait for a sent transaction to be mined, ms, before TxNotMinedError. Default 300 000.
   * A transaction the node no longer knows (dropped from its pool) fails after 10 polls instead.
   */
  minedTimeoutMs?: number;
}

const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const releasesIface = new Interface(VigilReleasesArtifact.abi as never);
/** The ABIs whose custom errors this client decodes (an RPC pool under it must decode with them). */
export const CONTRACT_IFACES: readonly Interface[] = [registryIface, releasesIface];
const IFACES = CONTRACT_IFACES;

function lower(a: string): Hex {
  return a.toLowerCase() as Hex;
}

function keyCode(k: KeyType | "none"): number {
  return k === "none" ? 0 : KEY_TYPE_CODE[k];
}

export class EthersRegistryClient implements RegistryClient {
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  readonly releasesAddress: Hex;
  readonly account: Hex;
  private readonly provider: JsonRpcApiProvider;
  private readonly sender: NonceManager;
  private readonly registry: Contract;
  private readonly releases: Contract;
  /** The endpoint for error messages (redacted there): the one URL, or the pool's current one. */
  private readonly urlOf: () => string;
  private readonly confirmations: number;
  private readonly minedTimeoutMs: number;
  private readonly pollMs: number;

  private constructor(
    opts: EthersClientSettings & { registry: string; releases: string },
    provider: JsonRpcApiProvider,
    urlOf: () => string,
    chainId: bigint,
    sender: NonceManager,
    account: string,
  ) {
    this.urlOf = urlOf;
    this.provider = provider;
    this.chainId = chainId;
    this.sender = sender;
    this.account = lower(account);
    this.registryAddress = lower(getAddress(opts.registry));
    this.releasesAddress = lower(getAddress(opts.releases));
    this.registry = new Contract(this.registryAddress, registryIface, sender);
    this.releases = new Contract(this.releasesAddress, releasesIface, sender);
    this.confirmations = opts.confirmations ?? 1;
    this.minedTimeoutMs = opts.minedTimeoutMs ?? 300_000;
    this.pollMs = opts.pollingIntervalMs ?? 250;
  }

  private get url(): string {
    return this.urlOf();
  }

  /** Connects and checks the chain id once (the provider then treats the network as static). */
  static async connect(opts: EthersClientOptions): Promise<EthersRegistryClient> {
    const chainId = opts.chainId ?? (await EthersRegistryClient.#askChainId(opts.rpcUrl));
    const provider = new JsonRpcProvider(opts.rpcUrl, chainId, {
      staticNetwork: true,
      batchMaxCount: 1,
      cacheTimeout: -1,
    });
    provider.pollingInterval = opts.pollingIntervalMs ?? 250;
    const wallet = new Wallet(opts.privateKey, provider);
    const url = opts.rpcUrl;
    return new EthersRegistryClient(
      opts,
      provider,
      () => url,
      chainId,
      new NonceManager(wallet),
      wallet.address,
    );
  }

  /**
   * The client over an RPC pool (several endpoints, failover, health checks: rpc.ts) instead of
   * one URL. Makes no request: the chain id is the deployment's.
   */
  static overRpc(opts: EthersPoolClientOptions): EthersRegistryClient {
    const provider = new RpcClientProvider(opts.rpc, opts.chainId);
    const wallet = new Wallet(opts.privateKey, provider);
    return new EthersRegistryClient(
      opts,
      provider,
      () => provider.currentUrl,
      opts.chainId,
      new NonceManager(wallet),
      wallet.address,
    );
  }

  static async #askChainId(rpcUrl: string): Promise<bigint> {
    const probe = probeProvider(rpcUrl);
    try {
      return BigInt((await probe.send("eth_chainId", [])) as string);
    } catch (e) {
      throw translateEthersError(e, rpcUrl, IFACES);
    } finally {
      probe.destroy();
    }
  }

  domain(): VigilDomain {
    return vigilDomain(this.chainId, this.registryAddress);
  }

  private async call<T>(contract: Contract, method: string, args: unknown[]): Promise<T> {
    try {
      return (await contract.getFunction(method).staticCall(...args)) as T;
    } catch (e) {
      throw translateEthersError(e, this.url, IFACES);
    }
  }

  private async send(contract: Contract, method: string, args: unknown[]): Promise<TransactionReceipt> {
    let receipt: TransactionReceipt | null;
    try {
      // ethers' NonceManager.sendTransaction starts a nonce request and does not await it when
      // populating the transaction (gas estimation) fails first: with the endpoint down both
      // fail, and that rejection was unhandled, which ends the process. Asked here first, it is
      // settled and cached (the same single request), so a failure is thrown here, typed.
      await this.sender.getNonce("pending");
      const tx = (await contract.getFunction(method).send(...args)) as ContractTransactionResponse;
      receipt = await this.waitMined(tx.hash);
    } catch (e) {
      // ethers' NonceManager increments its counter BEFORE gas estimation, so any failure (a revert
      // found while estimating, a stale nonce, a dropped connection) must reset it or the next
      // transaction would carry a nonce gap and never be mined.
      this.sender.reset();
      throw translateEthersError(e, this.url, IFACES);
    }
    if (!receipt || receipt.status !== 1) throw new ChainStateError(`${method}: transaction failed`);
    return receipt;
  }

  /**
   * Polls for the receipt until it has `confirmations`. Not `tx.wait()`: ethers' event-driven wait
   * was seen never to resolve for a transaction that was mined (bench/anchor.ts, twice in about
   * 1,300 sequential anchors on a loaded machine), which would leave a command hanging forever.
   * Bounded: TxNotMinedError when the node no longer knows the transaction (10 polls in a row) or
   * after `minedTimeoutMs`.
   */
  private async waitMined(hash: string): Promise<TransactionReceipt> {
    const deadline = Date.now() + this.minedTimeoutMs;
    // Polls in a row where the node knew neither a receipt nor the transaction. More than one: a
    // load-balanced provider may answer from a node the transaction has not reached yet.
    let unknown = 0;
    for (;;) {
      const r = await this.provider.getTransactionReceipt(hash);
      if (r) {
        unknown = 0;
        if ((await r.confirmations()) >= this.confirmations) return r;
      } else if ((await this.provider.getTransaction(hash)) === null) {
        if (++unknown >= 10) throw new TxNotMinedError(hash, "the node dropped it from its transaction pool");
      } else unknown = 0;
      if (Date.now() >= deadline)
        throw new TxNotMinedError(
          hash,
          `not mined within ${this.minedTimeoutMs < 10_000 ? `${this.minedTimeoutMs} ms` : `${Math.round(this.minedTimeoutMs / 1000)} s`}`,
        );
      await new Promise((res) => setTimeout(res, this.pollMs));
    }
  }

  private async tx(contract: Contract, method: string, args: unknown[]): Promise<TxResult> {
    const r = await this.send(contract, method, args);
    return { txHash: r.hash as Hex, blockNumber: BigInt(r.blockNumber), gasUsed: r.gasUsed };
  }

  // -------- roles
  grantOperator(site: Hex, account: Hex): Promise<TxResult> {
    return this.tx(this.registry, "grantRole", [operatorRoleId(site), account]);
  }
  grantRole(role: RoleName, account: Hex): Promise<TxResult> {
    return this.tx(this.registry, "grantRole", [roleId(role), account]);
  }
  revokeRole(role: RoleName, account: Hex): Promise<TxResult> {
    return this.tx(this.registry, "revokeRole", [roleId(role), account]);
  }
  hasRole(role: RoleName, account: Hex): Promise<boolean> {
    return this.call(this.registry, "hasRole", [roleId(role), account]);
  }

  // -------- devices
  registerGateway(a: RegisterGatewayArgs): Promise<TxResult> {
    return this.tx(this.registry, "registerGateway", [
      a.gatewayId,
      a.site,
      keyCode(a.keyType),
      a.publicKey,
      a.metadataURI,
    ]);
  }
  rotateGatewayKey(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<TxResult> {
    return this.tx(this.registry, "rotateGatewayKey", [gatewayId, keyCode(keyType), publicKey]);
  }
  rotateGatewayKeyBySignature(
    gatewayId: Hex,
    keyType: KeyType,
    publicKey: Hex,
    signature: Hex,
  ): Promise<TxResult> {
    return this.tx(this.registry, "rotateGatewayKeyBySignature", [
      gatewayId,
      keyCode(keyType),
      publicKey,
      signature,
    ]);
  }
  keyRotationDigest(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<Hex> {
    return this.call(this.registry, "keyRotationDigest", [gatewayId, keyCode(keyType), publicKey]);
  }
  suspendGateway(gatewayId: Hex): Promise<TxResult> {
    return this.tx(this.registry, "suspendGateway", [gatewayId]);
  }
  resumeGateway(gatewayId: Hex): Promise<TxResult> {
    return this.tx(this.registry, "resumeGateway", [gatewayId]);
  }
  revokeGateway(gatewayId: Hex): Promise<TxResult> {
    return this.tx(this.registry, "revokeGateway", [gatewayId]);
  }
  registerSensor(
    gatewayId: Hex,
    sensorId: number,
    keyType: KeyType | "none",
    publicKey: Hex,
  ): Promise<TxResult> {
    return this.tx(this.registry, "registerSensor", [gatewayId, sensorId, keyCode(keyType), publicKey]);
  }
  setSensorStatus(gatewayId: Hex, sensorId: number, status: DeviceStatus): Promise<TxResult> {
    return this.tx(this.registry, "setSensorStatus", [gatewayId, sensorId, DEVICE_STATUS.indexOf(status)]);
  }
  async getGateway(gatewayId: Hex): Promise<GatewayRecord> {
    const g = await this.call<Record<string, unknown>>(this.registry, "getGateway", [gatewayId]);
    const keyType = KEY_TYPES[Number(g.keyType)] ?? "none";
    const x = String(g.p256x);
    return {
      status: DEVICE_STATUS[Number(g.status)] ?? "none",
      keyType,
      keyEpoch: Number(g.keyEpoch),
      seq: BigInt(g.seq as bigint),
      head: lower(String(g.head)),
      signer: keyType === "secp256k1" ? lower(String(g.signer)) : null,
      p256PublicKey: keyType === "p256" ? lower(`${x}${String(g.p256y).slice(2)}`) : null,
      site: lower(String(g.site)),
      metadataURI: String(g.metadataURI),
    };
  }
  async getSensor(gatewayId: Hex, sensorId: number): Promise<SensorRecord> {
    const [status, keyType, publicKey] = await this.call<[bigint, bigint, string]>(
      this.registry,
      "getSensor",
      [gatewayId, sensorId],
    );
    return {
      status: DEVICE_STATUS[Number(status)] ?? "none",
      keyType: KEY_TYPES[Number(keyType)] ?? "none",
      publicKey: lower(publicKey),
    };
  }

  // -------- anchoring
  async anchor(header: BatchHeader, signature: Hex): Promise<AnchorResult> {
    const c = toCompactSignature(signature);
    const r = await this.send(this.registry, "anchor", [headerTuple(header), [c.r, c.vs]]);
    for (const log of r.logs) {
      if (lower(log.address) !== this.registryAddress) continue;
      const parsed = registryIface.parseLog(log);
      if (parsed?.name === "BatchAnchored") {
        return {
          txHash: r.hash as Hex,
          blockNumber: BigInt(r.blockNumber),
          gasUsed: r.gasUsed,
          seq: parsed.args.getValue("seq") as bigint,
          headerHash: lower(parsed.args.getValue("headerHash") as string),
          head: lower(parsed.args.getValue("head") as string),
        };
      }
    }
    throw new ChainStateError("anchor: no BatchAnchored event in the receipt");
  }
  anchorMany(items: readonly { header: BatchHeader; signature: Hex }[]): Promise<TxResult> {
    const sigs = items.map((i) => {
      const c = toCompactSignature(i.signature);
      return [c.r, c.vs];
    });
    return this.tx(this.registry, "anchorMany", [items.map((i) => headerTuple(i.header)), sigs]);
  }
  async getHead(gatewayId: Hex): Promise<{ seq: bigint; head: Hex }> {
    const [seq, head] = await this.call<[bigint, string]>(this.registry, "headOf", [gatewayId]);
    return { seq, head: lower(head) };
  }
  async nextSeq(gatewayId: Hex): Promise<bigint> {
    return (await this.getHead(gatewayId)).seq + 1n;
  }
  checkpoint(gatewayId: Hex): Promise<TxResult> {
    return this.tx(this.registry, "checkpoint", [gatewayId]);
  }
  verifyBatch(header: BatchHeader, later: readonly Hex[]): Promise<boolean> {
    return this.call(this.registry, "verifyBatch", [headerTuple(header), [...later]]);
  }
  isLeafIncluded(
    header: BatchHeader,
    later: readonly Hex[],
    leaf: Hex,
    proof: readonly Hex[],
  ): Promise<boolean> {
    return this.call(this.registry, "isLeafIncluded", [headerTuple(header), [...later], leaf, [...proof]]);
  }

  // -------- access
  grantSiteAccess(site: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult> {
    return this.tx(this.registry, "grantSiteAccess", [site, reader, expiresAt]);
  }
  revokeSiteAccess(site: Hex, reader: Hex): Promise<TxResult> {
    return this.tx(this.registry, "revokeSiteAccess", [site, reader]);
  }
  grantGatewayAccess(gatewayId: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult> {
    return this.tx(this.registry, "grantGatewayAccess", [gatewayId, reader, expiresAt]);
  }
  revokeGatewayAccess(gatewayId: Hex, reader: Hex): Promise<TxResult> {
    return this.tx(this.registry, "revokeGatewayAccess", [gatewayId, reader]);
  }
  isReaderAllowed(reader: Hex, gatewayId: Hex): Promise<boolean> {
    return this.call(this.registry, "isReaderAllowed", [reader, gatewayId]);
  }

  // -------- releases
  async proposeRelease(input: ReleaseInput): Promise<TxResult & { releaseId: bigint }> {
    const r = await this.send(this.releases, "propose", [
      [
        RELEASE_KINDS.indexOf(input.kind),
        input.target,
        input.version,
        input.contentHash,
        input.size,
        input.trainingDataHash,
        input.uris,
        input.metrics,
      ],
    ]);
    const ev = r.logs.map((l) => releasesIface.parseLog(l)).find((p) => p?.name === "ReleaseProposed");
    if (!ev) throw new ChainStateError("propose: no ReleaseProposed event");
    return {
      txHash: r.hash as Hex,
      blockNumber: BigInt(r.blockNumber),
      gasUsed: r.gasUsed,
      releaseId: ev.args.getValue("releaseId") as bigint,
    };
  }
  approveRelease(releaseId: bigint): Promise<TxResult> {
    return this.tx(this.releases, "approve", [releaseId]);
  }
  activateRelease(releaseId: bigint): Promise<TxResult> {
    return this.tx(this.releases, "activate", [releaseId]);
  }
  async currentApprovals(releaseId: bigint): Promise<number> {
    return Number(await this.call<bigint>(this.releases, "currentApprovals", [releaseId]));
  }
  revokeRelease(releaseId: bigint, reason: string): Promise<TxResult> {
    return this.tx(this.releases, "revoke", [releaseId, reason]);
  }
  setApprovalThreshold(threshold: number): Promise<TxResult> {
    return this.tx(this.releases, "setApprovalThreshold", [threshold]);
  }
  async getRelease(releaseId: bigint): Promise<ReleaseRecord | null> {
    const r = await this.call<Record<string, unknown>>(this.releases, "getRelease", [releaseId]);
    const status = RELEASE_STATUS[Number(r.status)] ?? "none";
    if (status === "none") return null;
    return {
      id: releaseId,
      kind: RELEASE_KINDS[Number(r.kind)] ?? "model",
      status,
      approvals: Number(r.approvals),
      version: BigInt(r.version as bigint),
      size: BigInt(r.size as bigint),
      proposer: lower(String(r.proposer)),
      target: lower(String(r.target)),
      contentHash: lower(String(r.contentHash)),
      trainingDataHash: lower(String(r.trainingDataHash)),
      uris: [...(r.uris as string[])],
      metrics: String(r.metrics),
    };
  }
  async activeRelease(kind: ReleaseKind, target: Hex): Promise<ReleaseRecord | null> {
    const id = await this.call<bigint>(this.releases, "activeRelease", [RELEASE_KINDS.indexOf(kind), target]);
    return id === 0n ? null : this.getRelease(id);
  }
  installNonce(gatewayId: Hex): Promise<bigint> {
    return this.call(this.releases, "installNonce", [gatewayId]);
  }
  installReportDigest(gatewayId: Hex, releaseId: bigint, nonce: bigint): Promise<Hex> {
    return this.call(this.releases, "installReportDigest", [gatewayId, releaseId, nonce]);
  }
  reportInstalled(gatewayId: Hex, releaseId: bigint, nonce: bigint, signature: Hex): Promise<TxResult> {
    return this.tx(this.releases, "reportInstalled", [gatewayId, releaseId, nonce, signature]);
  }
  installedRelease(gatewayId: Hex, kind: ReleaseKind): Promise<bigint> {
    return this.call(this.releases, "installedRelease", [gatewayId, RELEASE_KINDS.indexOf(kind)]);
  }

  async now(): Promise<bigint> {
    try {
      const b = await this.provider.getBlock("latest");
      return BigInt(b?.timestamp ?? 0);
    } catch (e) {
      throw translateEthersError(e, this.url, IFACES);
    }
  }

  /** Sends a raw JSON-RPC request (tests: evm_increaseTime, evm_mine). */
  async rpc(method: string, params: unknown[]): Promise<unknown> {
    try {
      return await this.provider.send(method, params);
    } catch (e) {
      throw translateEthersError(e, this.url, IFACES);
    }
  }

  /** Stops the provider (an RPC pool under it stays open: its owner closes it). */
  async close(): Promise<void> {
    this.provider.destroy();
  }
}

/**
 * A provider for raw `send` calls (eth_chainId, eth_getBalance, …) before the chain id is known:
 * its network is a placeholder (chain 0), so never sign with it. It exists because ethers' own
 * network detection, while an endpoint is down, retries every second and prints a line to stdout
 * (which broke `--json` output) instead of failing.
 */
export function probeProvider(rpcUrl: string): JsonRpcProvider {
  return new JsonRpcProvider(rpcUrl, undefined, {
    staticNetwork: Network.from(0n),
    batchMaxCount: 1,
    cacheTimeout: -1,
  });
}
