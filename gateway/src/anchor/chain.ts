/**
 * What the anchoring service needs from the chain ({@link AnchorChain}), and its implementation over
 * JSON-RPC ({@link RpcAnchorChain}: RPC pool with failover, fee-capped transaction sender, bounded
 * log queries from the registry's deployment block, finality by depth or by the `finalized` tag).
 */
import { Interface, toQuantity } from "ethers";
import { VigilRegistryArtifact } from "../../../contracts/artifacts/index.ts";
import { DEVICE_STATUS, KEY_TYPES, type DeviceStatus, type RegistryClient } from "../chain/client.ts";
import { hashBatchHeader, headerTuple, nextHead, type BatchHeader } from "../chain/eip712.ts";
import { ChainError, ChainStateError } from "../chain/errors.ts";
import { DEFAULT_LOG_RANGE, scanLogs } from "../chain/logs.ts";
import { detectL1FeeSource } from "../chain/op-stack.ts";
import { RpcPool, type RpcPoolStatus } from "../chain/rpc.ts";
import { assertKeyAllowed } from "../chain/sender-key.ts";
import { toCompactSignature } from "../chain/signature.ts";
import {
  TxSender,
  type FeeCaps,
  type InFlightTx,
  type PendingWait,
  type PaidTx,
  type TxSenderCounters,
  type TxLog,
} from "../chain/tx-sender.ts";
import type { Hex } from "../core/hex.ts";
import type { Logger } from "../core/log.ts";

/** One batch to anchor: the EIP-712 header and the gateway's signature over it. */
export interface AnchorItem {
  header: BatchHeader;
  signature: Hex;
}

/** A BatchAnchored event. */
export interface AnchoredEvent {
  gatewayId: Hex;
  seq: bigint;
  root: Hex;
  headerHash: Hex;
  head: Hex;
}

/** What one anchoring transaction did and cost. */
export interface SubmittedAnchor {
  txHash: Hex;
  blockNumber: number;
  blockHash: Hex;
  gasUsed: bigint;
  /** OP-Stack L1 data fee; null on other chains. */
  l1FeeWei: bigint | null;
  /** gasUsed × effective gas price + L1 fee. */
  costWei: bigint;
  /** Fee bumps before it was mined. */
  bumps: number;
  /** The BatchAnchored events of the transaction, in order. */
  events: AnchoredEvent[];
}

/** Where a BatchAnchored event is on chain. */
export interface FoundAnchor {
  txHash: Hex;
  blockNumber: number;
  blockHash: Hex;
  headerHash: Hex;
  head: Hex;
}

/** A mined transaction's place and its BatchAnchored events. */
export interface TxLocation {
  blockNumber: number;
  blockHash: Hex;
  events: AnchoredEvent[];
}

/** Health of the chain connection, for the anchoring status. */
export interface AnchorChainHealth {
  rpc: RpcPoolStatus | null;
  sender: {
    address: Hex;
    inFlight: InFlightTx | null;
    /** Waiting for the account's pending transactions of another process before sending. */
    pendingWait?: PendingWait | null;
    counters: TxSenderCounters;
  } | null;
  /** True on an OP-Stack chain (the L1 data fee is read and reported). */
  l1Fee: boolean;
}

export interface SubmitOptions {
  /** Bounds the transaction's worst-case cost (SpendCapError). */
  budget?: { spentWei: bigint; capWei: bigint };
  /** Stops waiting (the transaction may still be mined). */
  signal?: AbortSignal;
  /** Called with the cost once mined, also when the transaction failed (its gas was paid). */
  onCost?: (paid: PaidTx) => void;
}

export interface AnchorChain {
  readonly chainId: bigint;
  /** Registry address (lowercase). */
  readonly registryAddress: Hex;
  /**
   * Last anchored seq (0 = none) and head of the gateway, at the latest block, or at block `atBlock`
   * when given (so it agrees with a block read before it, whichever endpoint answers).
   */
  getHead(gatewayId: Hex, atBlock?: number): Promise<{ seq: bigint; head: Hex }>;
  /**
   * Anchors the items in one transaction (`anchor` for one, `anchorMany` for several) and resolves
   * once it is mined. `budget` bounds its worst-case cost (SpendCapError); `signal` stops waiting.
   */
  submit(items: readonly AnchorItem[], o?: SubmitOptions): Promise<SubmittedAnchor>;
  /**
   * What the mined transaction `txHash` cost, when this connection's sending account paid for it
   * (an anchor found mined after a crash); null when another account sent it or it is not mined.
   */
  costOf?(txHash: Hex): Promise<PaidTx | null>;
  /**
   * The BatchAnchored event of (gatewayId, seq), searched from `toBlock` back (default: the
   * endpoint's `eth_blockNumber`). Callers pass the latest block they read the registry at, so an
   * endpoint whose logs end below it is refused by the node (`LogsBeyondHeadError`, retried) rather
   * than searched short.
   */
  findAnchor(gatewayId: Hex, seq: bigint, toBlock?: number): Promise<FoundAnchor | null>;
  /** The mined transaction `txHash` (its block and BatchAnchored events), or null when the chain has none. */
  locate(txHash: Hex): Promise<TxLocation | null>;
  /** The latest block (a changed hash at the same height means a reorg). */
  latestBlock(): Promise<{ number: number; hash: Hex }>;
  /** The hash of block `n` as this endpoint has it; null when the endpoint has no such block yet. */
  blockHashAt(n: number): Promise<Hex | null>;
  /**
   * The highest block that counts as final now (depth or `finalized` tag), judged against `latest`
   * when given: the number of a latest block read just before, so that the finality and the reorg
   * and behind checks of one pass come from one read of the chain (a provider whose
   * `eth_blockNumber` lags its `eth_getBlockByNumber("latest")`, load-balanced backends at
   * different heights, must not freeze finality). Without it, the latest block is read here.
   */
  finalizedBlock(latest?: number): Promise<number>;
  /** The gateway's registration (to explain a refused anchor). */
  gateway?(gatewayId: Hex): Promise<{ status: DeviceStatus; keyType: string; publicKey: Hex; site: Hex }>;
  health?(): AnchorChainHealth;
  close(): Promise<void>;
}

const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const BATCH_ANCHORED = registryIface.getEvent("BatchAnchored")!;

/** Encodes the registry call for `items`: anchor(header, sig) or anchorMany(headers, sigs). */
export function anchorCalldata(items: readonly AnchorItem[]): Hex {
  const sig = (s: Hex): unknown[] => {
    const c = toCompactSignature(s);
    return [c.r, c.vs];
  };
  if (items.length === 1) {
    const i = items[0]!;
    return registryIface.encodeFunctionData("anchor", [headerTuple(i.header), sig(i.signature)]) as Hex;
  }
  return registryIface.encodeFunctionData("anchorMany", [
    items.map((i) => headerTuple(i.header)),
    items.map((i) => sig(i.signature)),
  ]) as Hex;
}

/** Decodes the BatchAnchored events of `registry` among `logs`. */
export function anchoredEvents(registry: string, logs: readonly TxLog[]): AnchoredEvent[] {
  const out: AnchoredEvent[] = [];
  for (const l of logs) {
    if (l.address.toLowerCase() !== registry.toLowerCase() || l.topics[0] !== BATCH_ANCHORED.topicHash)
      continue;
    const p = registryIface.parseLog({ topics: l.topics, data: l.data });
    if (!p) continue;
    out.push({
      gatewayId: String(p.args.getValue("gatewayId")).toLowerCase() as Hex,
      seq: p.args.getValue("seq") as bigint,
      root: String(p.args.getValue("root")).toLowerCase() as Hex,
      headerHash: String(p.args.getValue("headerHash")).toLowerCase() as Hex,
      head: String(p.args.getValue("head")).toLowerCase() as Hex,
    });
  }
  return out;
}

const seqTopic = (seq: bigint): string => `0x${seq.toString(16).padStart(64, "0")}`;

export interface RpcAnchorChainOptions {
  /** RPC endpoints in order of preference (failover). */
  rpcUrls: readonly string[];
  /** Chain id of the deployment: endpoints serving another chain are refused. */
  chainId: bigint;
  registry: string;
  /** Block the registry was deployed in: log queries start here. Default 0. */
  deployBlock?: number;
  /**
   * Key of the account that pays gas (a well-known development key only on a local dev chain).
   * Absent: a read-only connection (`submit` refuses), e.g. for `vigil anchor resync`.
   */
  senderPrivateKey?: string;
  /** Where the key came from, for messages (e.g. "chain.senderKeyFile"). */
  senderKeySource?: string;
  caps: FeeCaps;
  /** "depth" (`confirmations` deep) or the chain's "finalized" tag. Default depth. */
  finality?: "depth" | "finalized";
  /** Finality depth in blocks (≥ 1). Default 12. */
  confirmations?: number;
  /** Largest eth_getLogs range. Default 10 000. */
  logBlockRange?: number;
  rpcTimeoutMs?: number;
  healthCheckIntervalMs?: number;
  /** Blocks an endpoint may lag the highest one before it is skipped (RpcPool). Default 10. */
  maxLagBlocks?: number;
  bumpAfterBlocks?: number;
  bumpPercent?: number;
  /** Receipt polling period, ms. Default 500 (use ~50 on anvil). */
  pollMs?: number;
  logger?: Logger;
}

/** {@link AnchorChain} over JSON-RPC. Use {@link connectAnchorChain}. */
export class RpcAnchorChain implements AnchorChain {
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  readonly #rpc: RpcPool;
  readonly #sender: TxSender | undefined;
  readonly #fromBlock: number;
  readonly #logRange: number;
  readonly #finality: "depth" | "finalized";
  readonly #depth: number;
  readonly #l1: boolean;

  constructor(o: {
    rpc: RpcPool;
    sender: TxSender | undefined;
    chainId: bigint;
    registry: string;
    fromBlock: number;
    logRange: number;
    finality: "depth" | "finalized";
    depth: number;
    l1Fee: boolean;
  }) {
    this.chainId = o.chainId;
    this.registryAddress = o.registry.toLowerCase() as Hex;
    this.#rpc = o.rpc;
    this.#sender = o.sender;
    this.#fromBlock = o.fromBlock;
    this.#logRange = o.logRange;
    this.#finality = o.finality;
    this.#depth = o.depth;
    this.#l1 = o.l1Fee;
  }

  async #call(
    fn: string,
    args: unknown[],
    block: number | "latest" = "latest",
  ): Promise<ReturnType<Interface["decodeFunctionResult"]>> {
    const out = await this.#rpc.request<string>("eth_call", [
      { to: this.registryAddress, data: registryIface.encodeFunctionData(fn, args) },
      block === "latest" ? block : toQuantity(block),
    ]);
    return registryIface.decodeFunctionResult(fn, out);
  }

  async getHead(gatewayId: Hex, atBlock?: number): Promise<{ seq: bigint; head: Hex }> {
    const r = await this.#call("headOf", [gatewayId], atBlock ?? "latest");
    return { seq: r[0] as bigint, head: String(r[1]).toLowerCase() as Hex };
  }

  async gateway(
    gatewayId: Hex,
  ): Promise<{ status: DeviceStatus; keyType: string; publicKey: Hex; site: Hex }> {
    const g = (await this.#call("getGateway", [gatewayId]))[0] as Record<string, unknown>;
    const keyType = KEY_TYPES[Number(g.keyType)] ?? "none";
    return {
      status: DEVICE_STATUS[Number(g.status)] ?? "none",
      keyType,
      publicKey: (keyType === "p256"
        ? `${String(g.p256x)}${String(g.p256y).slice(2)}`
        : String(g.signer)
      ).toLowerCase() as Hex,
      site: String(g.site).toLowerCase() as Hex,
    };
  }

  async submit(items: readonly AnchorItem[], o: SubmitOptions = {}): Promise<SubmittedAnchor> {
    if (items.length === 0) throw new RangeError("nothing to anchor");
    if (!this.#sender) throw new ChainError("CHAIN_READ_ONLY", "this chain connection has no sending key");
    const mined = await this.#sender.send({
      to: this.registryAddress,
      data: anchorCalldata(items),
      ...(o.budget ? { budget: o.budget } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onCost ? { onCost: o.onCost } : {}),
    });
    const events = anchoredEvents(this.registryAddress, mined.logs);
    if (events.length !== items.length)
      throw new ChainStateError(
        `transaction ${mined.txHash} anchored ${events.length} batches, ${items.length} were sent`,
      );
    return {
      txHash: mined.txHash,
      blockNumber: mined.blockNumber,
      blockHash: mined.blockHash,
      gasUsed: mined.gasUsed,
      l1FeeWei: mined.l1FeeWei,
      costWei: mined.costWei,
      bumps: mined.bumps,
      events,
    };
  }

  async findAnchor(gatewayId: Hex, seq: bigint, toBlock?: number): Promise<FoundAnchor | null> {
    const logs = await scanLogs(
      this.#rpc,
      {
        address: this.registryAddress,
        topics: [BATCH_ANCHORED.topicHash, gatewayId.toLowerCase(), seqTopic(seq)],
      },
      {
        fromBlock: this.#fromBlock,
        ...(toBlock !== undefined ? { toBlock } : {}),
        maxRange: this.#logRange,
        direction: "backward",
        stopWhen: (l) => l.length > 0,
      },
    );
    const l = logs.at(-1);
    if (!l) return null;
    const [e] = anchoredEvents(this.registryAddress, [l]);
    if (!e) return null;
    return {
      txHash: l.transactionHash as Hex,
      blockNumber: l.blockNumber,
      blockHash: l.blockHash as Hex,
      headerHash: e.headerHash,
      head: e.head,
    };
  }

  async locate(txHash: Hex): Promise<TxLocation | null> {
    const r = await this.#rpc.request<{
      status: string;
      blockNumber: string;
      blockHash: string;
      logs: { address: string; topics: string[]; data: string; logIndex: string }[];
    } | null>("eth_getTransactionReceipt", [txHash]);
    if (!r || BigInt(r.status) !== 1n) return null;
    return {
      blockNumber: Number(BigInt(r.blockNumber)),
      blockHash: r.blockHash.toLowerCase() as Hex,
      events: anchoredEvents(
        this.registryAddress,
        r.logs.map((l) => ({
          address: l.address,
          topics: l.topics.map((t) => t.toLowerCase()),
          data: l.data,
          index: Number(BigInt(l.logIndex)),
        })),
      ),
    };
  }

  async costOf(txHash: Hex): Promise<PaidTx | null> {
    return this.#sender ? this.#sender.costOf(txHash) : null;
  }

  async latestBlock(): Promise<{ number: number; hash: Hex }> {
    const b = await this.#rpc.request<{ number: string; hash: string }>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    return { number: Number(BigInt(b.number)), hash: b.hash.toLowerCase() as Hex };
  }

  async blockHashAt(n: number): Promise<Hex | null> {
    const b = await this.#rpc.request<{ hash: string } | null>("eth_getBlockByNumber", [
      toQuantity(n),
      false,
    ]);
    return b ? (b.hash.toLowerCase() as Hex) : null;
  }

  async finalizedBlock(latest?: number): Promise<number> {
    if (this.#finality === "finalized") {
      const b = await this.#rpc.request<{ number: string } | null>("eth_getBlockByNumber", [
        "finalized",
        false,
      ]);
      const n = b ? Number(BigInt(b.number)) : -1;
      // Never above the latest block the caller judged the chain by (another endpoint may answer).
      return latest === undefined ? n : Math.min(n, latest);
    }
    // The block the caller read, or a "latest" block read (not eth_blockNumber, which a provider
    // may serve from another, lagging backend than the blocks themselves: RPC audit, finding 7).
    return (latest ?? (await this.latestBlock()).number) - this.#depth + 1;
  }

  health(): AnchorChainHealth {
    return {
      rpc: this.#rpc.status(),
      sender: this.#sender
        ? {
            address: this.#sender.address,
            inFlight: this.#sender.inFlight(),
            pendingWait: this.#sender.pendingWait(),
            counters: { ...this.#sender.counters },
          }
        : null,
      l1Fee: this.#l1,
    };
  }

  async close(): Promise<void> {
    this.#rpc.close();
  }
}

/**
 * Connects to the chain of a deployment: checks the chain id on the endpoints, that the registry has
 * code, refuses a well-known development key on a non-local chain, and detects the OP-Stack L1 fee.
 */
export async function connectAnchorChain(o: RpcAnchorChainOptions): Promise<RpcAnchorChain> {
  if (o.senderPrivateKey !== undefined)
    assertKeyAllowed(o.senderPrivateKey, o.chainId, o.rpcUrls, o.senderKeySource ?? "the sending key");
  const rpc = new RpcPool({
    urls: o.rpcUrls,
    expectedChainId: o.chainId,
    ifaces: [registryIface],
    ...(o.rpcTimeoutMs !== undefined ? { timeoutMs: o.rpcTimeoutMs } : {}),
    ...(o.healthCheckIntervalMs !== undefined ? { healthCheckIntervalMs: o.healthCheckIntervalMs } : {}),
    ...(o.maxLagBlocks !== undefined ? { maxLagBlocks: o.maxLagBlocks } : {}),
    ...(o.logger
      ? {
          onFailover: (e) =>
            o.logger!.warn({ from: e.from, to: e.to, url: e.url, reason: e.reason }, "RPC failover"),
        }
      : {}),
  });
  try {
    const chainId = BigInt(await rpc.request<string>("eth_chainId", []));
    if (chainId !== o.chainId)
      throw new ChainStateError(`the RPC serves chain ${chainId}, the deployment is on chain ${o.chainId}`);
    const code = await rpc.request<string>("eth_getCode", [o.registry, "latest"]);
    if (!code || code === "0x")
      throw new ChainStateError(`no contract at the registry address ${o.registry} on chain ${chainId}`);
    const l1 = await detectL1FeeSource(rpc);
    const sender =
      o.senderPrivateKey === undefined
        ? undefined
        : new TxSender({
            rpc,
            privateKey: o.senderPrivateKey,
            chainId,
            caps: o.caps,
            ifaces: [registryIface],
            l1Fee: l1,
            ...(o.bumpAfterBlocks !== undefined ? { bumpAfterBlocks: o.bumpAfterBlocks } : {}),
            ...(o.bumpPercent !== undefined ? { bumpPercent: o.bumpPercent } : {}),
            ...(o.pollMs !== undefined ? { pollMs: o.pollMs } : {}),
            ...(o.logger ? { logger: o.logger } : {}),
          });
    return new RpcAnchorChain({
      rpc,
      sender,
      chainId,
      registry: o.registry,
      fromBlock: o.deployBlock ?? 0,
      logRange: o.logBlockRange ?? DEFAULT_LOG_RANGE,
      finality: o.finality ?? "depth",
      depth: o.confirmations ?? 12,
      l1Fee: l1 !== null,
    });
  } catch (e) {
    rpc.close();
    throw e;
  }
}

/** Default fee caps (chain.maxFeePerGasGwei 50, chain.maxPriorityFeePerGasGwei 2), wei. */
export const DEFAULT_FEE_CAPS: FeeCaps = {
  maxFeePerGas: 50_000_000_000n,
  maxPriorityFeePerGas: 2_000_000_000n,
};

/** The short form (one URL, default caps): benchmarks and tests that predate the full options. */
export interface EthersAnchorChainOptions {
  rpcUrl: string;
  /** Key of the account paying gas (any funded account; the gateway key signs the batches). */
  senderPrivateKey: string;
  registry: string;
  /** Unused (kept for callers of the short form). */
  releases?: string;
  /** Finality depth. */
  confirmations: number;
  /** Receipt polling period, ms. */
  pollingIntervalMs?: number;
  /** Registry deployment block (log queries start there). Default 0. */
  deployBlock?: number;
}

/** {@link connectAnchorChain} from one URL with the default fee caps; the chain id is read from the RPC. */
export async function connectEthersAnchorChain(o: EthersAnchorChainOptions): Promise<RpcAnchorChain> {
  const probe = new RpcPool({ urls: [o.rpcUrl], healthCheckIntervalMs: 0 });
  let chainId: bigint;
  try {
    chainId = BigInt(await probe.request<string>("eth_chainId", []));
  } finally {
    probe.close();
  }
  return connectAnchorChain({
    rpcUrls: [o.rpcUrl],
    chainId,
    registry: o.registry,
    senderPrivateKey: o.senderPrivateKey,
    caps: DEFAULT_FEE_CAPS,
    confirmations: o.confirmations,
    healthCheckIntervalMs: 0,
    ...(o.deployBlock !== undefined ? { deployBlock: o.deployBlock } : {}),
    ...(o.pollingIntervalMs !== undefined ? { pollMs: o.pollingIntervalMs } : {}),
  });
}

/**
 * An {@link AnchorChain} over any {@link RegistryClient} (e.g. the in-memory FakeRegistryClient of unit
 * tests): submits through `anchor`/`anchorMany`, remembers its own transactions for `locate` and
 * `findAnchor`, and treats every mined block as final (a client has no reorgs to report).
 */
export function clientAnchorChain(client: RegistryClient): AnchorChain {
  const txs = new Map<Hex, TxLocation & { txHash: Hex }>();
  const blockHashOf = (n: bigint): Hex => `0x${n.toString(16).padStart(64, "0")}`;
  let latest = 0;
  return {
    chainId: client.chainId,
    registryAddress: client.registryAddress,
    getHead: (g) => client.getHead(g),
    async submit(items) {
      let head = (await client.getHead(items[0]!.header.gatewayId)).head;
      const r =
        items.length === 1
          ? await client.anchor(items[0]!.header, items[0]!.signature)
          : await client.anchorMany(items);
      const events = items.map((i) => {
        head = nextHead(head, i.header);
        return {
          gatewayId: i.header.gatewayId.toLowerCase() as Hex,
          seq: i.header.seq,
          root: i.header.root.toLowerCase() as Hex,
          headerHash: hashBatchHeader(i.header),
          head,
        };
      });
      const loc = {
        txHash: r.txHash,
        blockNumber: Number(r.blockNumber),
        blockHash: blockHashOf(r.blockNumber),
        events,
      };
      txs.set(r.txHash, loc);
      latest = Math.max(latest, loc.blockNumber);
      return { ...loc, gasUsed: r.gasUsed, l1FeeWei: null, costWei: 0n, bumps: 0 };
    },
    async findAnchor(g, seq) {
      for (const t of [...txs.values()].reverse()) {
        const e = t.events.find((x) => x.gatewayId === g.toLowerCase() && x.seq === seq);
        if (e)
          return {
            txHash: t.txHash,
            blockNumber: t.blockNumber,
            blockHash: t.blockHash,
            headerHash: e.headerHash,
            head: e.head,
          };
      }
      return null;
    },
    locate: async (tx) => txs.get(tx) ?? null,
    latestBlock: async () => ({ number: latest, hash: blockHashOf(BigInt(latest)) }),
    blockHashAt: async (n) => (n <= latest ? blockHashOf(BigInt(n)) : null),
    finalizedBlock: async () => latest,
    close: () => client.close(),
  };
}
