/**
 * AnchorService against the in-memory registry (FakeChain): order, exactly-once, outage backoff,
 * finality tracking, a reorg that drops anchors, pauses (fee cap, spend cap, revoked gateway) and
 * the status fields. The same behaviours run against anvil in test/anchor/anvil.test.ts and
 * test/interop/chain-faults.test.ts.
 */
import { describe, expect, it, vi } from "vitest";
import { keccak256 } from "ethers";
import { FakeChain, type FakeRegistryClient } from "../../gateway/src/chain/fake-client.ts";
import {
  ChainError,
  ChainNetworkError,
  ChainStateError,
  FeeCapError,
  SpendCapError,
} from "../../gateway/src/chain/errors.ts";
import { hashBatchHeader, nextHead } from "../../gateway/src/chain/eip712.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { manualTimers } from "./manual-timers.ts";
import { AnchorService, AnchorStateError, type AnchorPause } from "../../gateway/src/anchor/service.ts";
import type { InFlightTx, PendingWait, TxSenderCounters } from "../../gateway/src/chain/tx-sender.ts";
import type {
  AnchorChain,
  AnchorChainHealth,
  AnchorItem,
  AnchoredEvent,
  SubmitOptions,
  SubmittedAnchor,
  TxLocation,
} from "../../gateway/src/anchor/chain.ts";
import { resyncAnchors } from "../../gateway/src/anchor/resync.ts";
import { record } from "../store/abstract.ts";

const GATEWAY = ("0x" + "0a".repeat(32)) as Hex;
const SITE = ("0x" + "5e".repeat(32)) as Hex;
const ADMIN = "0x00000000000000000000000000000000000000ad";
const OPERATOR = "0x00000000000000000000000000000000000000a1";
const RELAYER = "0x00000000000000000000000000000000000000b2";
const COST = 1_000_000n; // wei per transaction
/**
 * Noon UTC of a fixed day, for the tests that assert the day's spend: with the real clock, a run
 * across 00:00 UTC would start a new day (and a zero spend) halfway through the test.
 */
const NOON_US = Date.UTC(2026, 10, 16, 12) * 1000;
const atNoon = { nowUs: () => NOON_US };

const blockHash = (n: number, fork = 0): Hex =>
  keccak256(`0x${(n * 1000 + fork).toString(16).padStart(64, "0")}`) as Hex;

/**
 * An AnchorChain over the fake registry: each transaction is a block; the network can be switched
 * off; `reorg(toSeq)` drops the blocks that anchored batches above `toSeq` (like anvil_reorg).
 */
class FlakyChain implements AnchorChain {
  down = false;
  sends = 0;
  depth = 3;
  fork = 0;
  nextError: Error | undefined;
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  readonly txs = new Map<Hex, TxLocation & { txHash: Hex }>();
  constructor(
    readonly client: FakeRegistryClient,
    readonly chain: FakeChain,
  ) {
    this.chainId = client.chainId;
    this.registryAddress = client.registryAddress;
  }
  private check(): void {
    if (this.down) throw new ChainNetworkError("http://127.0.0.1:1", { reason: "ECONNREFUSED" });
  }
  get block(): number {
    return Number(this.chain.block);
  }
  /** The next submit is mined but reverts (its gas is paid: onCost), then rejects with this. */
  revertNext: Error | undefined;
  /** The next submit waits like a transaction that is not mined, until its signal aborts. */
  hangNext = false;
  hanging = false;
  async submit(items: readonly AnchorItem[], o: SubmitOptions = {}): Promise<SubmittedAnchor> {
    this.check();
    if (this.hangNext) {
      this.hangNext = false;
      this.hanging = true;
      await new Promise((r) => o.signal?.addEventListener("abort", r, { once: true }));
      throw new ChainError("CHAIN_ABORTED", "sending was stopped");
    }
    if (this.revertNext) {
      const e = this.revertNext;
      this.revertNext = undefined;
      const txHash = keccak256(`0x${(++this.reverted).toString(16).padStart(64, "f")}`) as Hex;
      o.onCost?.({ txHash, gasUsed: 30_000n, l1FeeWei: null, costWei: COST });
      throw e;
    }
    if (this.nextError) {
      const e = this.nextError;
      this.nextError = undefined;
      throw e;
    }
    if (o.budget && o.budget.spentWei + COST > o.budget.capWei)
      throw new SpendCapError(o.budget.spentWei, COST, o.budget.capWei);
    this.sends++;
    const prev = (await this.client.getHead(GATEWAY)).head;
    const r =
      items.length === 1
        ? await this.client.anchor(items[0]!.header, items[0]!.signature)
        : await this.client.anchorMany(items);
    let head = prev;
    const events: AnchoredEvent[] = items.map((i) => {
      head = nextHead(head, i.header);
      return {
        gatewayId: GATEWAY,
        seq: i.header.seq,
        root: i.header.root,
        headerHash: hashBatchHeader(i.header),
        head,
      };
    });
    const loc = {
      txHash: r.txHash,
      blockNumber: Number(r.blockNumber),
      blockHash: blockHash(Number(r.blockNumber), this.fork),
      events,
    };
    this.txs.set(r.txHash, loc);
    return { ...loc, gasUsed: 50_000n, l1FeeWei: 7n, costWei: COST, bumps: 0 };
  }
  /** The sender's transaction in flight, as the real connection's health() reports it. */
  inFlight: InFlightTx | null = null;
  pendingWait: PendingWait | null = null;
  health(): AnchorChainHealth {
    return {
      rpc: null,
      sender: {
        address: RELAYER,
        inFlight: this.inFlight,
        pendingWait: this.pendingWait,
        counters: {} as TxSenderCounters,
      },
      l1Fee: false,
    };
  }
  reverted = 0;
  /** When a transaction's block was made (µs), as costOf reports it; unset: not reported. */
  readonly minedAt = new Map<Hex, number>();
  /** Every transaction this fake sent was paid by its (the gateway's) account. */
  async costOf(tx: Hex) {
    this.check();
    const at = this.minedAt.get(tx);
    return this.txs.has(tx)
      ? {
          txHash: tx,
          gasUsed: 50_000n,
          l1FeeWei: 7n,
          costWei: COST,
          ...(at === undefined ? {} : { minedAtUs: at }),
        }
      : null;
  }
  async getHead(g: Hex) {
    this.check();
    return this.lag > 0 && this.lagHead ? this.lagHead : this.client.getHead(g);
  }
  async findAnchor(g: Hex, seq: bigint) {
    this.check();
    for (const t of [...this.txs.values()].reverse()) {
      const e = t.events.find((x) => x.gatewayId === g && x.seq === seq);
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
  }
  async locate(tx: Hex) {
    this.check();
    return this.txs.get(tx) ?? null;
  }
  /** Blocks this endpoint is behind (a lagging fallback): it reports an older head and registry head. */
  lag = 0;
  lagHead: { seq: bigint; head: Hex } | undefined;
  async latestBlock() {
    this.check();
    const n = this.block - this.lag;
    return { number: n, hash: blockHash(n, this.fork) };
  }
  async blockHashAt(n: number) {
    this.check();
    return n <= this.block - this.lag ? blockHash(n, this.fork) : null;
  }
  async finalizedBlock() {
    this.check();
    return this.block - this.depth + 1;
  }
  /** Mines `n` empty blocks. */
  mine(n: number): void {
    this.chain.block += BigInt(n);
  }
  /** A reorg that drops every transaction anchoring a seq above `toSeq` (the chain's head goes back). */
  reorg(toSeq: bigint, head: Hex): void {
    this.fork++;
    for (const [h, t] of this.txs) if (t.events.some((e) => e.seq > toSeq)) this.txs.delete(h);
    const g = this.chain.gateways.get(GATEWAY)!;
    g.seq = toSeq;
    g.head = head;
  }
  async close() {}
}

async function setup(keyType: "secp256k1" | "p256" = "secp256k1") {
  const chain = new FakeChain({ admin: ADMIN });
  await chain.client(ADMIN).grantOperator(SITE, OPERATOR);
  const signer = new GatewaySigner(generateKey(keyType));
  await chain.client(OPERATOR).registerGateway({
    gatewayId: GATEWAY,
    site: SITE,
    keyType,
    publicKey: signer.publicKey,
    metadataURI: "",
  });
  const relayer = chain.client(RELAYER);
  const flaky = new FlakyChain(relayer, chain);
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  let seq = 0;
  const ingest = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await store.append(record(1, seq++));
  };
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId: GATEWAY,
    domain: relayer.domain(),
    maxLeaves: 10,
  });
  let connects = 0;
  const service = (o: Partial<ConstructorParameters<typeof AnchorService>[0]> = {}) =>
    new AnchorService({
      store,
      gatewayId: GATEWAY,
      connect: async () => {
        connects++;
        return flaky;
      },
      confirmations: 3,
      random: () => 0.5,
      ...o,
    });
  return { chain, flaky, store, sealer, ingest, service, signer, connects: () => connects };
}

async function sealAll(sealer: BatchSealer): Promise<void> {
  while (await sealer.sealNow());
}

describe("AnchorService with the fake registry", () => {
  it.each(["secp256k1", "p256"] as const)(
    "behavior: anchors every sealed batch in order exactly once and records where, not final yet (%s)",
    async (kt) => {
      const t = await setup(kt);
      await t.ingest(35);
      await sealAll(t.sealer);
      expect(t.store.lastBatchSeq()).toBe(4);
      const s = t.service(atNoon);
      expect(await s.runOnce()).toBe(4);
      expect(t.flaky.sends).toBe(4);
      expect(await s.runOnce()).toBe(0);
      expect(t.flaky.sends).toBe(4);
      const head = await t.flaky.getHead(GATEWAY);
      expect(head).toEqual({ seq: 4n, head: t.store.lastHead() });
      const a = (await t.store.getAnchor(3))!;
      expect(a).toMatchObject({
        chainId: 31337,
        contract: t.flaky.registryAddress,
        confirmations: 3,
        final: false,
        gasUsed: 50_000,
        costWei: String(COST),
        l1FeeWei: "7",
      });
      expect(a.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      expect(a.blockHash).toBe(blockHash(a.blockNumber!));
      // A receipt carries the anchor with its block hash and finality, and still verifies offline.
      const r = await new ReceiptBuilder(t.store).forSeq(1, 25);
      expect(r.anchor).toEqual({
        chainId: 31337,
        contract: a.contract,
        txHash: a.txHash,
        blockNumber: a.blockNumber,
        blockHash: a.blockHash,
        final: false,
        confirmations: 3,
        anchoredAtUs: a.anchoredAtUs,
      });
      expect(await verifyReceipt(r)).toMatchObject({ ok: true, anchored: { txHash: a.txHash } });
      // The second run saw blocks 3..6 mined: at depth 3 the anchors in blocks ≤ 4 (batches 1, 2) are final.
      expect(s.status()).toMatchObject({
        anchoredThrough: 4,
        finalThrough: 2,
        unfinalized: 2,
        spentTodayWei: String(4n * COST),
        lastTx: { seqs: [4, 4], gasUsed: 50_000, l1FeeWei: "7" },
        counters: { anchored: 4, transactions: 4 },
      });
    },
  );

  it("behavior: anchors become final at the configured depth, in order, and receipts say so", async () => {
    const t = await setup();
    await t.ingest(30);
    await sealAll(t.sealer);
    const s = t.service();
    await s.runOnce(); // blocks 4, 5, 6 (the setup used 2)
    expect(s.status().finalThrough).toBe(0);
    t.flaky.mine(1); // latest 7, final ≤ 5: batches 1, 2
    await s.runOnce();
    expect(s.status()).toMatchObject({ finalThrough: 2, unfinalized: 1, counters: { finalized: 2 } });
    expect((await t.store.getAnchor(2))!.final).toBe(true);
    expect((await t.store.getAnchor(3))!.final).toBe(false);
    expect((await new ReceiptBuilder(t.store).forSeq(1, 5)).anchor?.final).toBe(true);
    t.flaky.mine(5);
    await s.runOnce();
    expect(s.status().finalThrough).toBe(3);
    // A new service (a restart) recovers the final mark from the records.
    expect(t.service().status().finalThrough).toBe(0); // not read before the first pass
    const s2 = t.service();
    await s2.runOnce();
    expect(s2.status().finalThrough).toBe(3);
  });

  it("behavior: a reorg that drops anchors is detected; the same headers are anchored again (seq and head unchanged); receipts never name the vanished transaction", async () => {
    const t = await setup();
    await t.ingest(40);
    await sealAll(t.sealer);
    const s = t.service({ maxBatchesPerTx: 1 });
    expect(await s.runOnce()).toBe(4);
    const gone = (await t.store.getAnchor(3))!.txHash;
    const head2 = (await t.store.getBatch(2))!.head as Hex;
    // Batches 3 and 4's blocks are replaced by others: the chain is back at seq 2.
    t.flaky.reorg(2n, head2);
    t.flaky.mine(1);
    expect(await s.runOnce()).toBe(2); // detected, un-anchored, anchored again in the same pass
    expect(s.status().counters.reorgs).toBe(2);
    expect(await t.flaky.getHead(GATEWAY)).toEqual({ seq: 4n, head: t.store.lastHead() });
    const a3 = (await t.store.getAnchor(3))!;
    expect(a3.txHash).not.toBe(gone);
    expect(t.flaky.txs.has(a3.txHash as Hex)).toBe(true);
    const r = await new ReceiptBuilder(t.store).forSeq(1, 25); // batch 3
    expect(r.batch.header.seq).toBe(3);
    expect(r.anchor?.txHash).toBe(a3.txHash);
    expect(t.store.lastBatchSeq()).toBe(4); // nothing was sealed again
  });

  it("behavior: a reorg that drops anchors beyond the maxPerRun records checked per pass is still a reorg, not a reset chain", async () => {
    const t = await setup();
    t.flaky.depth = 1000; // nothing final: over maxPerRun unfinished anchors, as with `finalized` on OP
    await t.ingest(60);
    await sealAll(t.sealer);
    const s = t.service({ maxPerRun: 2 });
    while (t.store.anchoredThrough() < 6) await s.runOnce();
    const head4 = (await t.store.getBatch(4))!.head as Hex;
    t.flaky.reorg(4n, head4); // batches 5 and 6 lie past the two records checked per pass
    t.flaky.mine(1);
    const sends = t.flaky.sends;
    expect(await s.runOnce()).toBe(2);
    expect(s.status()).toMatchObject({ anchoredThrough: 6, lastError: null, counters: { reorgs: 2 } });
    expect(t.flaky.sends).toBe(sends + 2);
    expect(await t.flaky.getHead(GATEWAY)).toEqual({ seq: 6n, head: t.store.lastHead() });
    expect(t.flaky.txs.has((await t.store.getAnchor(6))!.txHash as Hex)).toBe(true);
  });

  it("error: an endpoint behind the newest anchor's block (a lagging fallback) is not a reorg: CHAIN_BEHIND, retried, nothing un-anchored", async () => {
    const t = await setup();
    await t.ingest(30);
    await sealAll(t.sealer);
    const s = t.service({ maxBatchesPerTx: 1 });
    expect(await s.runOnce()).toBe(3);
    t.flaky.mine(1);
    // It has neither batch 3's receipt nor the registry's head past batch 1.
    t.flaky.lag = 3;
    t.flaky.lagHead = { seq: 1n, head: (await t.store.getBatch(1))!.head as Hex };
    await expect(s.runOnce()).rejects.toMatchObject({ code: "CHAIN_BEHIND" });
    expect(s.status()).toMatchObject({ anchoredThrough: 3, counters: { reorgs: 0 } });
    expect(s.status().lastError).toMatchObject({
      code: "CHAIN_BEHIND",
      message: expect.stringMatching(/below block \d+ of batch 3's anchor: waiting for it to catch up/),
    });
    expect(t.flaky.sends).toBe(3);
    // caught up: nothing to redo
    t.flaky.lag = 0;
    expect(await s.runOnce()).toBe(0);
    expect(s.status()).toMatchObject({ anchoredThrough: 3, counters: { reorgs: 0 }, lastError: null });
  });

  it("error: resync against a lagging endpoint removes nothing (CONFLICT: it lags); a changed hash of a recorded block (reorg, reset) or chainReset removes", async () => {
    const t = await setup();
    await t.ingest(30);
    await sealAll(t.sealer);
    expect(await t.service({ maxBatchesPerTx: 1 }).runOnce()).toBe(3);
    t.flaky.mine(1);
    const blocks = await Promise.all([1, 2, 3].map(async (s) => (await t.store.getAnchor(s))!.blockNumber!));
    const resync = (o: { dryRun?: boolean; chainReset?: boolean } = {}) =>
      resyncAnchors({ store: t.store, chain: t.flaky, gatewayId: GATEWAY, confirmations: 3, ...o });
    // At batch 1's block: it has that block as recorded, neither batch 2 nor 3, so a head of 1.
    t.flaky.lag = t.flaky.block - blocks[0]!;
    t.flaky.lagHead = { seq: 1n, head: (await t.store.getBatch(1))!.head as Hex };
    const lag = await resync();
    expect(lag).toMatchObject({ chainSeq: 1, removed: 0, anchoredAfter: 3 });
    expect(lag.conflicts).toEqual([
      `batches 2..3: not removed: the RPC endpoint is at block ${blocks[0]}, below block ${blocks[2]} where batch 3's anchor was recorded, and it has block ${blocks[0]} of batch 1's anchor as recorded: it lags behind the chain this store anchored on (or a reorg left it shorter): wait until it passes block ${blocks[2]}, or run resync against an endpoint that is synced; if the chain was reset, pass --chain-reset`,
    ]);
    expect(t.store.anchoredThrough()).toBe(3);
    // Below every recorded block: nothing to compare, so a lag and a reset look alike.
    t.flaky.lag = t.flaky.block - blocks[0]! + 1;
    const blind = await resync();
    expect(blind.removed).toBe(0);
    expect(blind.conflicts[0]).toMatch(
      /no anchor recorded at or below that block tells a lagging endpoint from a reset chain.*pass --chain-reset$/,
    );
    expect(t.store.anchoredThrough()).toBe(3);
    expect(await resync({ chainReset: true, dryRun: true })).toMatchObject({ removed: 2, conflicts: [] });
    expect(t.store.anchoredThrough()).toBe(3);
    // Batch 1's block with another hash: another chain, whatever its height.
    t.flaky.lag = t.flaky.block - blocks[0]!;
    t.flaky.fork++;
    const forked = await resync();
    expect(forked).toMatchObject({ removed: 2, anchoredAfter: 1, conflicts: [] });
    expect(t.store.anchoredThrough()).toBe(1);
  });

  it("error: a chain whose head falls below a FINAL anchor stops with AnchorStateError naming resync; resync reconciles and says what it did", async () => {
    const t = await setup();
    await t.ingest(30);
    await sealAll(t.sealer);
    const s = t.service();
    await s.runOnce();
    t.flaky.mine(10);
    await s.runOnce();
    expect(s.status().finalThrough).toBe(3);
    t.flaky.reorg(1n, (await t.store.getBatch(1))!.head as Hex); // deeper than the finality depth
    t.flaky.mine(1);
    await expect(s.runOnce()).rejects.toThrow(/vigil anchor resync/);
    expect(s.status().lastError?.code).toBe("ANCHOR_STATE");
    const dry = await resyncAnchors({
      store: t.store,
      chain: t.flaky,
      gatewayId: GATEWAY,
      confirmations: 3,
      dryRun: true,
    });
    expect(dry).toMatchObject({
      chainSeq: 1,
      anchoredBefore: 3,
      anchoredAfter: 1,
      removed: 2,
      conflicts: [],
    });
    expect(t.store.anchoredThrough()).toBe(3); // dry run: nothing written
    const rep = await resyncAnchors({ store: t.store, chain: t.flaky, gatewayId: GATEWAY, confirmations: 3 });
    expect(rep.actions.join("\n")).toMatch(
      /batches 2\.\.3: recorded as anchored, but the registry holds only 1: records removed/,
    );
    expect(t.store.anchoredThrough()).toBe(1);
    const s2 = t.service();
    expect(await s2.runOnce()).toBe(2);
    expect(await t.flaky.getHead(GATEWAY)).toEqual({ seq: 3n, head: t.store.lastHead() });
  });

  it("behavior: chain outage: ingest and sealing go on, backlog is anchored in order when it returns", async () => {
    const t = await setup();
    const s = t.service();
    await t.ingest(10);
    await sealAll(t.sealer);
    expect(await s.runOnce()).toBe(1);
    t.flaky.down = true;
    for (let round = 0; round < 3; round++) {
      await t.ingest(20);
      await sealAll(t.sealer);
      await expect(s.runOnce()).rejects.toBeInstanceOf(ChainNetworkError);
    }
    expect(s.status()).toMatchObject({
      anchoredThrough: 1,
      backlog: 6,
      failures: 3,
      lastError: { code: "CHAIN_NETWORK" },
    });
    expect(t.connects()).toBe(3); // the connection is dropped after each network failure…
    t.flaky.down = false;
    expect(await s.runOnce()).toBe(6);
    expect(t.connects()).toBe(4); // …and opened again on the next run
    expect(s.status()).toMatchObject({ anchoredThrough: 7, backlog: 0, failures: 0, lastError: null });
    expect(t.flaky.sends).toBe(7);
    expect((await t.flaky.getHead(GATEWAY)).seq).toBe(7n);
  });

  /** Two sealed batches; batch 1 is on chain, sent by a process that crashed before recording it. */
  async function sentBeforeCrash() {
    const t = await setup();
    await t.ingest(20);
    await sealAll(t.sealer);
    const b1 = (await t.store.getBatch(1))!;
    const { toEip712Header } = await import("../../gateway/src/attest/header.ts");
    const sent = await t.flaky.submit([
      { header: toEip712Header(b1.header), signature: b1.signature as Hex },
    ]);
    t.flaky.sends = 0;
    return { t, sent };
  }

  it("behavior: a batch sent just before a crash is recorded with its transaction, not sent again", async () => {
    const { t, sent } = await sentBeforeCrash();
    const s = t.service(atNoon);
    expect(await s.runOnce()).toBe(2);
    expect(t.flaky.sends).toBe(1); // only batch 2
    // Paid for by the gateway's account before the crash: its cost is recorded and counted today.
    expect(await t.store.getAnchor(1)).toMatchObject({
      txHash: sent.txHash,
      blockNumber: sent.blockNumber,
      costWei: String(COST),
      gasUsed: 50_000,
    });
    expect(s.status().spentTodayWei).toBe(String(2n * COST));
  });

  it("behavior: an anchor found on chain that was mined on an earlier day (a store restored from a backup) is recorded with its cost but not counted in today's spend", async () => {
    const { t, sent } = await sentBeforeCrash();
    t.flaky.minedAt.set(sent.txHash, NOON_US - 2 * 86_400_000_000);
    const s = t.service(atNoon);
    expect(await s.runOnce()).toBe(2);
    expect(await t.store.getAnchor(1)).toMatchObject({ txHash: sent.txHash, costWei: String(COST) });
    expect(s.status().spentTodayWei).toBe(String(COST)); // batch 2's transaction only
  });

  it("behavior: a reverted anchor's gas counts toward the daily spend, and the day's spend survives a restart (status shows it before anything is sent)", async () => {
    const t = await setup();
    await t.ingest(20);
    await sealAll(t.sealer);
    const s = t.service({ maxSpendPerDayWei: 10n * COST, ...atNoon });
    t.flaky.revertNext = new ChainStateError("transaction 0x… was mined but failed");
    await expect(s.runOnce()).rejects.toBeInstanceOf(ChainStateError);
    expect(s.status()).toMatchObject({ spentTodayWei: String(COST), gasUsed: 30_000, anchoredThrough: 0 });
    expect(await s.runOnce()).toBe(2);
    expect(s.status().spentTodayWei).toBe(String(3n * COST));
    await s.stop();
    // A restart: the first pass (nothing to send) already shows the day's spend, the revert included.
    const s2 = t.service({ maxSpendPerDayWei: 10n * COST, ...atNoon });
    expect(await s2.runOnce()).toBe(0);
    expect(s2.status().spentTodayWei).toBe(String(3n * COST));
  });

  it("error: a chain behind the local anchored count (reset chain) is an AnchorStateError, nothing is sent", async () => {
    const t = await setup();
    await t.ingest(20);
    await sealAll(t.sealer);
    await t.store.markAnchored(1, {
      chainId: 31337,
      contract: "0x00",
      txHash: null,
      blockNumber: null,
      confirmations: 1,
      anchoredAtUs: 0,
    });
    const s = t.service();
    await expect(s.runOnce()).rejects.toBeInstanceOf(AnchorStateError);
    expect(t.flaky.sends).toBe(0);
  });

  it("behavior: the daily spend cap pauses anchoring (status, counter, one callback) until 00:00 UTC; sealing and finality tracking go on", async () => {
    const t = await setup();
    let now = Date.UTC(2026, 10, 30, 23, 0) * 1000;
    const pauses: (AnchorPause | null)[] = [];
    const s = t.service({
      maxSpendPerDayWei: 2n * COST + 1n,
      nowUs: () => now,
      onPause: (p) => pauses.push(p),
    });
    await t.ingest(40);
    await sealAll(t.sealer);
    expect(await s.runOnce()).toBe(2);
    const st = s.status();
    expect(st.paused).toMatchObject({ reason: "spend-cap", untilUs: Date.UTC(2026, 11, 1) * 1000 });
    expect(st.paused!.message).toMatch(/daily cap .*chain\.maxSpendPerDayEth.*00:00 UTC/);
    expect(st).toMatchObject({
      spentTodayWei: String(2n * COST),
      spendCapWei: String(2n * COST + 1n),
      backlog: 2,
    });
    expect(st.counters.pauses["spend-cap"]).toBe(1);
    await t.ingest(10);
    await sealAll(t.sealer);
    expect(t.store.lastBatchSeq()).toBe(5); // sealing goes on
    expect(await s.runOnce()).toBe(0); // still paused: nothing is even sent
    expect(t.flaky.sends).toBe(2);
    // Reading is free: the paused service still follows finality.
    expect(s.status().finalThrough).toBe(0);
    t.flaky.mine(5);
    expect(await s.runOnce()).toBe(0);
    expect(s.status().finalThrough).toBe(2);
    now = Date.UTC(2026, 11, 1, 0, 1) * 1000; // the next UTC day: two more, then the cap again
    expect(await s.runOnce()).toBe(2);
    expect(s.status()).toMatchObject({
      anchoredThrough: 4,
      spentTodayWei: String(2n * COST),
      paused: { reason: "spend-cap", untilUs: Date.UTC(2026, 11, 2) * 1000 },
    });
    expect(pauses.map((p) => p?.reason ?? null)).toEqual(["spend-cap", null, "spend-cap"]);
    // A restart the same day recovers the day's spend from the anchor records (2) and adds batch 5's.
    const s2 = t.service({ maxSpendPerDayWei: 10n * COST, nowUs: () => now });
    expect(await s2.runOnce()).toBe(1);
    expect(s2.status().spentTodayWei).toBe(String(3n * COST));
  });

  it("behavior: an anchor transaction in flight at the fee caps, or while the chain's head stands still, is shown as stalled with what to do", async () => {
    const t = await setup();
    let now = Date.UTC(2026, 11, 2, 12) * 1000;
    const s = t.service({ nowUs: () => now, stallAfterMs: 60_000 });
    await s.runOnce(); // connected
    expect(s.status().stalled).toBeNull();
    const sentAtMs = now / 1000;
    const tx: InFlightTx = {
      nonce: 7,
      txHash: `0x${"ee".repeat(32)}`,
      maxFeePerGas: 1n,
      maxPriorityFeePerGas: 1n,
      sentAtBlock: 100,
      versions: 1,
      atCap: false,
      sentAtMs,
      headBlock: 101,
      headSeenAtMs: sentAtMs,
    };
    t.flaky.inFlight = tx;
    now += 59_000e3; // 59 s without a new block: not yet
    expect(s.status().stalled).toBeNull();
    now += 2_000e3;
    expect(s.status().stalled).toEqual({
      reason: "no-blocks",
      txHash: tx.txHash,
      sentAtUs: sentAtMs * 1000,
      message: `no new block for 61 s (block 101) while anchor transaction ${tx.txHash} waits: the sequencer is halted or the RPC endpoint is frozen (add another endpoint to chain.rpcUrls)`,
    });
    t.flaky.inFlight = { ...tx, atCap: true, headSeenAtMs: now / 1000 };
    expect(s.status().stalled).toMatchObject({ reason: "fee-cap", txHash: tx.txHash });
    expect(s.status().stalled!.message).toMatch(
      /nonce 7\) is at the fee caps and not mined.*chain\.maxFeePerGasGwei/,
    );
    t.flaky.inFlight = null; // mined
    expect(s.status().stalled).toBeNull();
    // Waiting for the account's pending transaction of another process: a halted chain shows too.
    t.flaky.pendingWait = { nonce: 9, sinceMs: now / 1000, headBlock: 140, headSeenAtMs: now / 1000 };
    now += 59_000e3;
    expect(s.status().stalled).toBeNull();
    now += 2_000e3;
    expect(s.status().stalled).toEqual({
      reason: "no-blocks",
      txHash: null,
      sentAtUs: now - 61_000e3,
      message:
        "no new block for 61 s (block 140) while anchoring waits for the sending account's pending transaction (nonce 9): the sequencer is halted or the RPC endpoint is frozen (add another endpoint to chain.rpcUrls)",
    });
  });

  it("behavior: a stop while a transaction is in flight is not counted as a failure", async () => {
    const t = await setup();
    await t.ingest(10);
    await sealAll(t.sealer);
    const s = t.service();
    t.flaky.hangNext = true;
    s.start();
    await vi.waitFor(() => expect(t.flaky.hanging).toBe(true), { interval: 5 });
    await s.stop();
    expect(s.status()).toMatchObject({ failures: 0, lastError: null, anchoredThrough: 0 });
  });

  it("behavior: a base fee above the cap pauses (fee-cap) and resumes when it falls", async () => {
    const t = await setup();
    const s = t.service();
    await t.ingest(10);
    await sealAll(t.sealer);
    t.flaky.nextError = new FeeCapError(80_000_000_000n, 50_000_000_000n);
    expect(await s.runOnce()).toBe(0);
    expect(s.status().paused).toMatchObject({ reason: "fee-cap" });
    expect(s.status().paused!.message).toMatch(/base fee is 80 gwei, above the cap of 50 gwei/);
    expect(await s.runOnce()).toBe(1);
    expect(s.status().paused).toBeNull();
  });

  it("behavior: a revoked gateway pauses anchoring with the registry's reason; data stays stored and sealed", async () => {
    const t = await setup();
    const s = t.service();
    await t.ingest(10);
    await sealAll(t.sealer);
    expect(await s.runOnce()).toBe(1);
    await t.chain.client(OPERATOR).revokeGateway(GATEWAY);
    await t.ingest(20);
    await sealAll(t.sealer);
    expect(await s.runOnce()).toBe(0);
    expect(s.status()).toMatchObject({
      paused: { reason: "gateway-inactive" },
      lastError: { code: "CHAIN_REVERT" },
      backlog: 2,
      anchoredThrough: 1,
    });
    expect(s.status().paused!.message).toMatch(/is not active \(it is revoked\).*stay sealed/);
    expect(t.store.lastBatchSeq()).toBe(3);
    expect(await t.store.getBatch(3)).toBeDefined();
  });

  it("behavior: retries back off exponentially (1 s, 2 s, 4 s … capped) and resume the interval after success", async () => {
    const t = await setup();
    const { timers, delays, step } = manualTimers();
    const s = t.service({ timers });
    await t.ingest(10);
    await sealAll(t.sealer);
    t.flaky.down = true;
    s.start();
    for (let i = 0; i < 5; i++) await step();
    expect(delays).toEqual([0, 1000, 2000, 4000, 8000, 16000]);
    t.flaky.down = false;
    await step();
    expect(delays.at(-1)).toBe(5000);
    expect(t.store.anchoredThrough()).toBe(1);
    await s.stop();
  });

  it("behavior: with a node-cron schedule, batches sealed later are anchored on the next tick", async () => {
    const t = await setup();
    const s = t.service({ cron: "* * * * * *" });
    expect(() => t.service({ cron: "not cron" })).toThrow(RangeError);
    s.start();
    await t.ingest(10);
    await sealAll(t.sealer);
    await new Promise<void>((res) => {
      const check = (): void => void (t.store.anchoredThrough() >= 1 ? res() : setTimeout(check, 20));
      check();
    });
    await s.stop();
    expect(t.store.anchoredThrough()).toBe(1);
  });

  it("behavior: maxBatchesPerTx sends a backlog several batches per transaction, still in order", async () => {
    const t = await setup();
    await t.ingest(65);
    await sealAll(t.sealer);
    expect(t.store.lastBatchSeq()).toBe(7);
    const s = t.service({ maxBatchesPerTx: 3 });
    expect(await s.runOnce()).toBe(7);
    expect(t.flaky.sends).toBe(3); // 3 + 3 + 1
    expect((await t.flaky.getHead(GATEWAY)).head).toBe(t.store.lastHead());
    const a = await Promise.all([1, 2, 3, 4].map((q) => t.store.getAnchor(q)));
    expect(a[0]!.txHash).toBe(a[2]!.txHash);
    expect(a[3]!.txHash).not.toBe(a[0]!.txHash);
  });
});
