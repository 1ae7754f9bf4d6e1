/**
 * Anchoring against anvil, one fault per test (each with its own anvil, stopped by its PID):
 * a reorg that drops anchors (anvil_reorg), a revert of a snapshot while sealing goes on (the
 * issue's evm_revert case), mining stopped so a fee bump is needed, a dropped transaction, two
 * anvils with failover, a proxy that injects timeouts / 429s / malformed answers / lost answers, a
 * revoked gateway key, the OP-Stack L1 fee in the status, `vigil anchor resync` against a lagging
 * replica (an anvil forked at an older block) and after a reorg deeper than the finality depth. (The outage with a restart from --state is test/anchor/anvil.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Interface } from "ethers";
import { VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import type { Logger } from "../../gateway/src/core/log.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt, type TrustAnchor } from "../../gateway/src/attest/verify.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { anchorCommand } from "../../gateway/src/cli/anchor.ts";
import { jsonRpc, pipeline, startChainRig, type ChainRig } from "../anchor/chain-rig.ts";
import { installOpPredeploys } from "../anchor/op-predeploys.ts";
import { startRpcProxy, type RpcProxy } from "../anchor/rpc-proxy.ts";

const GW = ("0x" + "77".repeat(32)) as Hex;
const GWEI = 1_000_000_000n;
const iface = new Interface(VigilRegistryArtifact.abi as never);

let dir: string;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function rig(opts: Parameters<typeof startChainRig>[1] = {}): Promise<ChainRig> {
  dir = mkdtempSync(join(tmpdir(), "vigil-faults-"));
  const r = await startChainRig(dir, opts);
  cleanups.push(() => r.stop());
  return r;
}

/** A logger that keeps every line (to check what is said, and that no secret is). */
function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const fn =
    (level: string) =>
    (a: object | string, b?: string): void =>
      void lines.push(`${level} ${typeof a === "string" ? a : `${b ?? ""} ${JSON.stringify(a)}`}`);
  const l = {
    lines,
    fatal: fn("fatal"),
    error: fn("error"),
    warn: fn("warn"),
    info: fn("info"),
    debug: fn("debug"),
    trace: fn("trace"),
    child: () => l,
  };
  return l as Logger & { lines: string[] };
}

/** seq → count of BatchAnchored events of GW in the registry. */
async function anchoredSeqs(url: string, registry: string): Promise<number[]> {
  const ev = iface.getEvent("BatchAnchored")!;
  const logs = await jsonRpc<{ topics: string[]; data: string }[]>(url, "eth_getLogs", [
    { address: registry, topics: [ev.topicHash, GW], fromBlock: "0x0", toBlock: "latest" },
  ]);
  return logs.map((l) => Number(iface.parseLog(l)!.args.getValue("seq") as bigint));
}

/**
 * `vigil anchor resync` on a gateway config over `data` and the rig's chain: runs it with extra
 * arguments and returns its exit status and what it printed (stdout and stderr).
 */
function resyncCli(r: ChainRig, data: string): (...args: string[]) => Promise<{ code: number; out: string }> {
  const config = join(dir, "vigil.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: data,
      attest: { gatewayId: GW },
      chain: { rpcUrl: r.url, deployment: r.deploymentFile, confirmations: 1 },
    }),
  );
  return async (...args) => {
    let out = "";
    const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) };
    const code = await anchorCommand(["resync", "-c", config, ...args], io);
    return { code, out };
  };
}

const trustOf = (r: ChainRig): TrustAnchor => ({
  chainId: 31337n,
  registry: r.deployment.contracts.VigilRegistry.address,
  fromBlock: r.deployment.deployBlock,
  gatewayId: GW,
});

describe("anchoring faults on anvil", () => {
  it("behavior: a reorg that drops the anchor blocks (anvil_reorg) is detected; the same headers are anchored again; 12 more batches follow; no ANCHOR_STATE", async () => {
    const r = await rig();
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const svc = p.service({}, { confirmations: 5 });
    await p.ingest(30);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(3);
    const dropped = (await p.store.getAnchor(2))!.txHash!;
    // Batches 2 and 3 were mined in the last two blocks: replace them.
    await r.rpc("anvil_reorg", [2, []]);
    expect((await r.admin.getHead(GW)).seq).toBe(1n);
    expect(await r.rpc("eth_getTransactionReceipt", [dropped])).toBeNull();
    await p.ingest(120);
    await p.sealAll();
    expect(p.store.lastBatchSeq()).toBe(15);
    expect(await svc.runOnce()).toBe(14);
    expect(svc.status()).toMatchObject({
      anchoredThrough: 15,
      backlog: 0,
      lastError: null,
      counters: { reorgs: 2 },
    });
    expect(await r.admin.getHead(GW)).toEqual({ seq: 15n, head: p.store.lastHead() });
    // One BatchAnchored per seq on the chain as it is now.
    expect(await anchoredSeqs(r.url, r.deployment.contracts.VigilRegistry.address)).toEqual(
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    // Batch 2's receipt names a transaction the chain has, and verifies on chain.
    const rc = await new ReceiptBuilder(p.store).forSeq(9, 15);
    expect(rc.batch.header.seq).toBe(2);
    expect(await r.rpc("eth_getTransactionReceipt", [rc.anchor!.txHash])).not.toBeNull();
    expect(await verifyReceipt(rc, { trust: trustOf(r), rpcUrl: r.url })).toMatchObject({ ok: true });
    await svc.stop();
  });

  it("behavior: evm_revert drops batch 2 while the gateway seals 12 more: batch 2 is anchored again, the chain catches up, its receipt never names the vanished transaction", async () => {
    const r = await rig();
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const svc = p.service({}, { confirmations: 10 });
    await p.ingest(10);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(1);
    const snap = await r.rpc<string>("evm_snapshot");
    await p.ingest(10);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(1);
    const vanished = (await p.store.getAnchor(2))!.txHash;
    expect(await r.rpc("evm_revert", [snap])).toBe(true);
    // A real chain keeps growing: the reorg is judged once it is as high as the lost anchor's
    // block again (below it, the endpoint could as well be a lagging one: CHAIN_BEHIND).
    await r.rpc("anvil_mine", ["0x2"]);
    await p.ingest(120);
    await p.sealAll();
    expect(p.store.lastBatchSeq()).toBe(14);
    expect(await svc.runOnce()).toBe(13);
    expect(svc.status()).toMatchObject({ anchoredThrough: 14, lastError: null, counters: { reorgs: 1 } });
    expect(await r.admin.getHead(GW)).toEqual({ seq: 14n, head: p.store.lastHead() });
    const a2 = (await p.store.getAnchor(2))!;
    expect(await r.rpc("eth_getTransactionReceipt", [a2.txHash])).not.toBeNull();
    const rc = await new ReceiptBuilder(p.store).forSeq(9, 15);
    expect(rc.anchor!.txHash).toBe(a2.txHash);
    if (a2.txHash === vanished) expect(await r.rpc("eth_getTransactionReceipt", [vanished])).not.toBeNull();
    // Final at depth 10 once enough blocks follow.
    await r.rpc("anvil_mine", ["0x10"]);
    await svc.runOnce();
    expect(svc.status().finalThrough).toBe(14);
    expect((await new ReceiptBuilder(p.store).forSeq(9, 15)).anchor!.final).toBe(true);
    await svc.stop();
  });

  it("behavior: mining stopped for the anchor (base fee above its fee): replaced with a bumped fee after N blocks; a dropped anchor transaction is sent again", async () => {
    const r = await rig();
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const svc = p.service({}, { bumpAfterBlocks: 2, confirmations: 1 });
    await p.ingest(20);
    await p.sealAll();
    await r.rpc("evm_setAutomine", [false]);
    const run = svc.runOnce();
    const sender = (): NonNullable<ReturnType<typeof svc.status>["chain"]>["sender"] | undefined =>
      svc.status().chain?.sender ?? undefined;
    const waitInFlight = async (): Promise<string> => {
      for (;;) {
        const f = sender()?.inFlight;
        if (f) return f.txHash;
        await new Promise((res) => setTimeout(res, 10));
      }
    };
    // Batch 1: blocks come at 10 gwei, above the first version's max fee.
    const first = await waitInFlight();
    let done = false;
    void run.finally(() => (done = true));
    let phase: "high" | "drop" | "normal" = "high";
    let dropped: string | undefined;
    while (!done) {
      if (phase === "high" && (sender()?.counters.bumps ?? 0) >= 1) phase = "drop";
      if (phase === "drop" && p.store.anchoredThrough() === 1) {
        // Batch 2: drop its transaction from the pool.
        dropped = await waitInFlight();
        await r.rpc("anvil_dropTransaction", [dropped]);
        phase = "normal";
      }
      await r.rpc("anvil_setNextBlockBaseFeePerGas", [
        `0x${(phase === "high" ? 10n * GWEI : GWEI / 2n).toString(16)}`,
      ]);
      await r.rpc("evm_mine");
      await new Promise((res) => setTimeout(res, 30));
    }
    expect(await run).toBe(2);
    const a1 = (await p.store.getAnchor(1))!;
    const a2 = (await p.store.getAnchor(2))!;
    expect(a1.txHash).not.toBe(first);
    expect(await r.rpc("eth_getTransactionReceipt", [first])).toBeNull();
    expect(a2.txHash).not.toBe(dropped);
    expect(await r.admin.getHead(GW)).toEqual({ seq: 2n, head: p.store.lastHead() });
    expect(sender()!.counters.bumps).toBeGreaterThanOrEqual(2);
    expect(svc.status().lastTx!.bumps).toBeGreaterThanOrEqual(1);
    await r.rpc("evm_setAutomine", [true]);
    await svc.stop();
  });

  it("behavior: two anvils: the first dies, anchoring fails over to the second (same chain state) and says so with redacted URLs", async () => {
    const r = await rig();
    const standby: Anvil = await startAnvil();
    cleanups.push(() => standby.stop());
    // The second provider's URL carries credentials and an API key in its path (a proxy in front of
    // the standby anvil accepts any path).
    const front = await startRpcProxy(standby.url);
    cleanups.push(() => front.close());
    const port = new URL(front.url).port;
    const secondUrl = `http://ops:S3cret@127.0.0.1:${port}/0123456789abcdef0123456789abcdef01234567/`;
    const log = memoryLogger();
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const svc = p.service({ logger: log }, { rpcUrls: [r.url, secondUrl], confirmations: 1, logger: log });
    await p.ingest(30);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(3);
    // The standby follows the chain (here: its state copied), then the first node dies.
    await jsonRpc(standby.url, "anvil_loadState", [await r.rpc("anvil_dumpState")]);
    await r.anvil.kill();
    await p.ingest(30);
    await p.sealAll();
    await svc.runOnce().catch(() => undefined); // the old connection fails once, the new one fails over
    if (p.store.anchoredThrough() < 6) expect(await svc.runOnce()).toBeGreaterThan(0);
    expect(p.store.anchoredThrough()).toBe(6);
    const st = svc.status();
    expect(st.chain!.rpc).toMatchObject({ current: 1 });
    expect(st.chain!.rpc!.failovers).toBeGreaterThanOrEqual(1);
    expect(st.chain!.rpc!.endpoints[1]!.url).toBe(`http://***:***@127.0.0.1:${port}/***/`);
    expect(st.chain!.rpc!.endpoints[0]).toMatchObject({ healthy: false });
    const text = JSON.stringify(st) + log.lines.join("\n");
    expect(text).not.toContain("S3cret");
    expect(text).not.toContain("0123456789abcdef0123456789abcdef");
    expect(log.lines.some((l) => l.includes("RPC failover"))).toBe(true);
    expect(await anchoredSeqs(standby.url, r.deployment.contracts.VigilRegistry.address)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    const rc = await new ReceiptBuilder(p.store).forSeq(9, 45);
    expect(await verifyReceipt(rc, { trust: trustOf(r), rpcUrl: standby.url })).toMatchObject({ ok: true });
    await svc.stop();
  });

  it("behavior: a provider that times out, throttles (429), answers HTML, truncated or non-JSON-RPC bodies, or loses answers: every batch anchored exactly once", async () => {
    const r = await rig();
    const proxy: RpcProxy = await startRpcProxy(r.url);
    cleanups.push(() => proxy.close());
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const svc = p.service({}, { rpcUrls: [proxy.url], rpcTimeoutMs: 300, confirmations: 1 });
    await p.ingest(60);
    await p.sealAll();
    proxy.inject("timeout", { method: "eth_getTransactionCount" });
    proxy.inject("429");
    proxy.inject("html", { method: "eth_estimateGas" });
    proxy.inject("truncated", { method: "eth_getTransactionReceipt" });
    proxy.inject("not-jsonrpc", { method: "eth_call" });
    proxy.inject("lost-answer", { method: "eth_sendRawTransaction" }); // batch sent, the answer lost
    proxy.inject("drop", { method: "eth_getBlockByNumber" });
    for (let i = 0; i < 20 && p.store.anchoredThrough() < 6; i++) await svc.runOnce().catch(() => undefined);
    expect(p.store.anchoredThrough()).toBe(6);
    for (const f of ["timeout", "429", "html", "truncated", "not-jsonrpc", "lost-answer", "drop"])
      expect(
        proxy.seen.some((s) => s.outcome === f),
        f,
      ).toBe(true);
    expect(await anchoredSeqs(r.url, r.deployment.contracts.VigilRegistry.address)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    expect(await r.admin.getHead(GW)).toEqual({ seq: 6n, head: p.store.lastHead() });
    for (let s = 1; s <= 6; s++)
      expect(await r.rpc("eth_getTransactionReceipt", [(await p.store.getAnchor(s))!.txHash])).not.toBeNull();
    await svc.stop();
  });

  it("behavior: a revoked gateway key: anchoring stops with a clear error, a pause reason and a log line; frames stay stored and batches sealed", async () => {
    const r = await rig();
    const log = memoryLogger();
    const p = await pipeline(r, await r.registerGateway(GW), GW);
    const pauses: unknown[] = [];
    const svc = p.service({ logger: log, onPause: (x) => pauses.push(x) }, { confirmations: 1 });
    await p.ingest(10);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(1);
    await r.admin.revokeGateway(GW);
    await p.ingest(30);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(0);
    const st = svc.status();
    expect(st).toMatchObject({
      anchoredThrough: 1,
      backlog: 3,
      paused: { reason: "gateway-inactive" },
      lastError: { code: "CHAIN_REVERT" },
      counters: { pauses: { "gateway-inactive": 1 } },
    });
    expect(st.paused!.message).toContain(`gateway ${GW} is not active (it is revoked)`);
    expect(log.lines.some((l) => l.startsWith("warn anchoring paused: the registry refuses anchors"))).toBe(
      true,
    );
    expect(pauses).toHaveLength(1);
    expect(p.store.lastBatchSeq()).toBe(4);
    expect(p.store.stats().lastIndex).toBe(40);
    expect(await p.store.getBatch(4)).toBeDefined();
    expect(await svc.runOnce()).toBe(0); // still refused: the pause stays, counted once
    expect(svc.status().counters.pauses["gateway-inactive"]).toBe(1);
    await svc.stop();
  });

  it("behavior: on an OP-Stack chain the L1 data fee of each anchor is read and reported beside L2 gas", async () => {
    const r = await rig({ network: "optimism" });
    await installOpPredeploys(r.url);
    const p = await pipeline(r, await r.registerGateway(GW, "p256"), GW);
    const svc = p.service({}, { confirmations: 1 });
    await p.ingest(30);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(3);
    const st = svc.status();
    expect(st.chain!.l1Fee).toBe(true);
    expect(BigInt(st.lastTx!.l1FeeWei!)).toBeGreaterThan(0n);
    expect(st.lastTx!.gasUsed).toBeGreaterThan(21_000);
    const a = (await p.store.getAnchor(3))!;
    expect(a.l1FeeWei).toBe(st.lastTx!.l1FeeWei);
    expect(BigInt(a.costWei!)).toBeGreaterThan(BigInt(a.l1FeeWei!));
    expect(BigInt(st.spentTodayWei)).toBeGreaterThanOrEqual(3n * BigInt(a.l1FeeWei!));
    await svc.stop();
  });

  it("behavior: an anchor mined just before a crash is recorded with its cost (L1 fee included) and counted in the day's spend; another account's anchor costs this gateway nothing", async () => {
    const r = await rig({ network: "optimism" });
    await installOpPredeploys(r.url);
    const p = await pipeline(r, await r.registerGateway(GW, "p256"), GW);
    await p.ingest(20);
    await p.sealAll();
    // "Today" compares a transaction's block time (the chain's clock) with the service's clock. Both
    // are set to the next noon UTC, the service's following the chain's, so the run cannot straddle
    // 00:00 UTC between the anchor mined before the crash and the service counting it.
    const DAY_MS = 86_400_000;
    const noonMs = Math.ceil((Date.now() + 60_000 - DAY_MS / 2) / DAY_MS) * DAY_MS + DAY_MS / 2;
    await r.rpc("evm_setTime", [noonMs / 1000]);
    const chainAheadMs = noonMs - Date.now();
    const chainNowUs = (): number => (Date.now() + chainAheadMs) * 1000;
    const { connectAnchorChain } = await import("../../gateway/src/anchor/chain.ts");
    const { toEip712Header } = await import("../../gateway/src/attest/header.ts");
    // The process that sent batch 1 "crashed" before recording it.
    const before = await connectAnchorChain(p.chainOptions());
    const b1 = (await p.store.getBatch(1))!;
    const sent = await before.submit([{ header: toEip712Header(b1.header), signature: b1.signature as Hex }]);
    expect(sent.l1FeeWei).not.toBeNull();
    // Mined on the chain's pinned clock (the pin took), hours from any 00:00 UTC.
    const minedAtUs = (await before.costOf(sent.txHash))!.minedAtUs!;
    expect(Math.abs(minedAtUs / 1000 - noonMs)).toBeLessThan(3_600_000);
    await before.close();
    const other = await connectAnchorChain(p.chainOptions({ senderPrivateKey: ANVIL_DEV_KEYS[2] }));
    expect(await other.costOf(sent.txHash)).toBeNull();
    await other.close();
    const svc = p.service({ maxSpendPerDayWei: 10n ** 18n, nowUs: chainNowUs }, { confirmations: 1 });
    expect(await svc.runOnce()).toBe(2);
    expect(await p.store.getAnchor(1)).toMatchObject({
      txHash: sent.txHash,
      costWei: String(sent.costWei),
      l1FeeWei: String(sent.l1FeeWei),
      gasUsed: Number(sent.gasUsed),
    });
    const a2 = (await p.store.getAnchor(2))!;
    expect(BigInt(svc.status().spentTodayWei)).toBe(sent.costWei + BigInt(a2.costWei!));
    await svc.stop();
  });

  it("behavior: vigil anchor resync against a lagging replica (anvil forked at batch 1's block) removes nothing and says it lags; --chain-reset would; the synced node agrees", async () => {
    const r = await rig();
    const signer = await r.registerGateway(GW);
    const data = join(dir, "data");
    const store = new LevelFrameStore({ dir: join(data, "store"), reserveBytes: 0, minFreeBytes: 0 });
    const p = await pipeline(r, signer, GW, { store });
    const svc = p.service({ maxBatchesPerTx: 1 }, { confirmations: 1 });
    await p.ingest(30);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(3);
    await r.rpc("evm_mine");
    await svc.runOnce();
    expect(svc.status().finalThrough).toBe(3);
    await svc.stop();
    const blocks = await Promise.all([1, 2, 3].map(async (s) => (await store.getAnchor(s))!.blockNumber!));
    expect(blocks[2]).toBeGreaterThan(blocks[0]!);
    await store.close();
    // A replica that stopped at batch 1's block: same chain, same hashes up to there.
    const replica = await startAnvil({
      extraArgs: ["--fork-url", r.url, "--fork-block-number", String(blocks[0])],
    });
    cleanups.push(() => replica.stop());
    const resync = resyncCli(r, data);
    let { code, out } = await resync("--rpc", replica.url);
    expect(code).toBe(1);
    expect(out).toContain("registry: 1 batches anchored; store: 3 sealed, 3 recorded as anchored");
    expect(out).toContain(
      `CONFLICT batches 2..3: not removed: the RPC endpoint is at block ${blocks[0]}, below block ${blocks[2]} where batch 3's anchor was recorded, and it has block ${blocks[0]} of batch 1's anchor as recorded: it lags`,
    );
    expect(out).toContain("now 3 recorded as anchored (0 updated, 0 removed, 0 added)");
    ({ code, out } = await resync("--rpc", replica.url, "--chain-reset", "--dry-run"));
    expect(code).toBe(0);
    expect(out).toContain(
      "batches 2..3: recorded as anchored, but the registry holds only 1: records would be removed",
    );
    ({ code, out } = await resync());
    expect(code).toBe(0);
    expect(out).toContain("nothing to do: the store agrees with the chain");
    expect(out).toContain("now 3 recorded as anchored (0 updated, 0 removed, 0 added); 0 batches wait");
  });

  it("behavior: a reorg deeper than the finality depth stops anchoring (ANCHOR_STATE naming resync); vigil anchor resync reconciles the store and says what it did", async () => {
    const r = await rig();
    const signer = await r.registerGateway(GW);
    const data = join(dir, "data");
    const store = new LevelFrameStore({ dir: join(data, "store"), reserveBytes: 0, minFreeBytes: 0 });
    const p = await pipeline(r, signer, GW, { store });
    const svc = p.service({}, { confirmations: 1 });
    await p.ingest(10);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(1);
    const snap = await r.rpc<string>("evm_snapshot");
    await p.ingest(20);
    await p.sealAll();
    expect(await svc.runOnce()).toBe(2);
    await r.rpc("evm_mine");
    await svc.runOnce();
    expect(svc.status().finalThrough).toBe(3); // depth 1: final at once
    await r.rpc("evm_revert", [snap]);
    // past the lost anchors' blocks again (below them it could be a lagging endpoint)
    await r.rpc("anvil_mine", ["0x4"]);
    await expect(svc.runOnce()).rejects.toThrow(/deeper than the finality depth.*vigil anchor resync/);
    await svc.stop();
    await store.close();
    const resync = resyncCli(r, data);
    let { code, out } = await resync("--dry-run");
    expect(code).toBe(0);
    expect(out).toContain("dry run: nothing written");
    expect(out).toContain(
      "batches 2..3: recorded as anchored, but the registry holds only 1: records would be removed",
    );
    ({ code, out } = await resync());
    expect(code).toBe(0);
    expect(out).toContain(
      "records removed; the gateway anchors these batches again (same headers) when it runs",
    );
    expect(out).toContain(
      "now 1 recorded as anchored (0 updated, 2 removed, 0 added); 2 batches wait to be anchored",
    );
    // The gateway, restarted, anchors them again.
    const store2 = new LevelFrameStore({ dir: join(data, "store"), reserveBytes: 0, minFreeBytes: 0 });
    const p2 = await pipeline(r, signer, GW, { store: store2 });
    const svc2 = p2.service({}, { confirmations: 1 });
    expect(await svc2.runOnce()).toBe(2);
    expect(await r.admin.getHead(GW)).toEqual({ seq: 3n, head: store2.lastHead() });
    await svc2.stop();
    await store2.close();
    ({ code, out } = await resync());
    expect(code).toBe(0);
    expect(out).not.toContain("CONFLICT");
    expect(out).toContain("now 3 recorded as anchored (");
    expect(out).toContain("0 removed, 0 added); 0 batches wait to be anchored");
    expect((await resync("--help")).code).toBe(0);
    expect((await resync("--bogus")).code).toBe(2);
    // A mistyped --data-dir is refused; it never becomes an empty store "in agreement".
    const typo = join(dir, "typo-dir");
    ({ code, out } = await resync("--data-dir", typo));
    expect(code).toBe(1);
    expect(out).not.toContain("nothing to do");
    expect(existsSync(join(typo, "store"))).toBe(false);
  });
});
