/**
 * `npm run bench -- anchor [--quick] [--depth N]`: anchoring and verification on anvil (issue 12).
 *
 * 1. anchors per minute sustained (one batch per transaction) through the production path
 *    (AnchorService → RPC pool → fee-capped sender), beside the previous path (ethers NonceManager
 *    client) measured in the same run
 * 2. gas and OP-Stack L1 fee per anchor (anvil --network optimism with the real GasPriceOracle and
 *    L1Block code, OP Mainnet's fee scalars, L1 base fee 5 gwei, blob base fee 1 gwei)
 * 3. seal → final p50/p99 at a finality depth (default 3) on anvil mining a block every second
 * 4. backlog drain after a simulated 10-minute outage (60 batches of a 10 s seal interval) with
 *    anchorMany (20 per transaction) beside one per transaction
 * 5. `vigil verify` throughput on a 10,000-receipt bundle: offline and with --rpc (the registry's
 *    gateway events read once per run, anchors once per batch), beside one-shot verification per receipt
 * Prints tables; the last line is one JSON object.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ANVIL_DEV_KEYS } from "../gateway/src/chain/anvil.ts";
import { EthersRegistryClient } from "../gateway/src/chain/ethers-client.ts";
import type { KeyType } from "../gateway/src/chain/keys.ts";
import { fmtEth } from "../gateway/src/chain/errors.ts";
import type { Hex } from "../gateway/src/core/hex.ts";
import { toEip712Header } from "../gateway/src/attest/header.ts";
import { ReceiptBuilder } from "../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../gateway/src/attest/verify.ts";
import { verifyCommand } from "../gateway/src/cli/verify.ts";
import { pipeline, startChainRig, type ChainRig } from "../test/anchor/chain-rig.ts";
import { installOpPredeploys, DEFAULT_L1_FEE } from "../test/anchor/op-predeploys.ts";
import { benchOptions, int } from "./lib/options.ts";

const { quick, depth: DEPTH } = benchOptions(
  import.meta.url,
  { quick: { type: "boolean" }, depth: { type: "string" } },
  (a) => ({ quick: a.quick === true, depth: int("depth", a.depth, 3, 1) }),
);
const root = mkdtempSync(join(tmpdir(), "vigil-bench-anchor-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));
process.on("SIGINT", () => process.exit(130));
let dirN = 0;
const freshDir = (): string => {
  const d = join(root, `r${dirN++}`);
  mkdirSync(d);
  return d;
};
const now = (): number => performance.now();
const gwFor = (n: number): Hex => `0x${n.toString(16).padStart(2, "0").repeat(32)}` as Hex;
const fmt = (n: number, d = 0): string =>
  n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
function table(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  console.log(`\n${title}`);
  cells.forEach((r, j) => {
    console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  "));
    if (j === 0) console.log(w.map((x) => "-".repeat(x)).join("  "));
  });
}

const out: Record<string, unknown> = { bench: "anchor", quick, depth: DEPTH };
const rigs: ChainRig[] = [];
async function rig(opts: Parameters<typeof startChainRig>[1] = {}): Promise<ChainRig> {
  const r = await startChainRig(freshDir(), opts);
  rigs.push(r);
  return r;
}

try {
  // ---------------------------------------------------------------- 1. anchors per minute
  {
    const r = await rig();
    const seconds = quick ? 10 : 60;
    const gw = gwFor(1);
    const p = await pipeline(r, await r.registerGateway(gw), gw, { maxLeaves: 10 });
    const svc = p.service({ maxBatchesPerTx: 1 }, { confirmations: 1, pollMs: 20 });
    await p.ingest(10);
    await p.sealAll();
    await svc.runOnce(); // warm: connection, first transaction
    let n = 0;
    const t0 = now();
    while (now() - t0 < seconds * 1000) {
      await p.ingest(10);
      await p.sealAll();
      n += await svc.runOnce();
    }
    const newPerMin = (n / (now() - t0)) * 60_000;
    await svc.stop();
    // Baseline: the previous path, ethers' NonceManager client waiting for 1 confirmation.
    const gw2 = gwFor(2);
    const p2 = await pipeline(r, await r.registerGateway(gw2), gw2, { maxLeaves: 10 });
    const client = await EthersRegistryClient.connect({
      rpcUrl: r.url,
      privateKey: ANVIL_DEV_KEYS[3],
      registry: r.deployment.contracts.VigilRegistry.address,
      releases: r.deployment.contracts.VigilReleases.address,
      pollingIntervalMs: 20,
    });
    let m = 0;
    let hung = 0;
    let t1 = now();
    let busyMs = 0;
    while (busyMs + (now() - t1) < (seconds / 2) * 1000) {
      await p2.ingest(10);
      await p2.sealAll();
      const b = (await p2.store.pendingAnchors(1))[0]!;
      // ethers' tx.wait() was seen never to resolve here for a mined transaction (twice, after 227
      // and 471 anchors on a loaded machine); the client now polls for receipts instead. Should a
      // wait still hang, give up after 10 s, count it, and leave its time out of the rate.
      const sent = client.anchor(toEip712Header(b.header), b.signature as Hex);
      const timedOut = await Promise.race([
        sent.then(() => false),
        new Promise<boolean>((res) => setTimeout(() => res(true), 10_000).unref()),
      ]);
      if (timedOut) {
        hung++;
        sent.catch(() => undefined);
        break;
      }
      busyMs += now() - t1;
      t1 = now();
      await p2.store.markAnchored(b.header.seq, {
        chainId: 31337,
        contract: client.registryAddress,
        txHash: null,
        blockNumber: null,
        confirmations: 1,
        anchoredAtUs: 0,
      });
      m++;
    }
    const oldPerMin = (m / busyMs) * 60_000;
    await client.close().catch(() => undefined);
    table(
      `1. Anchors per minute sustained on anvil (automine, one batch per transaction, ${seconds} s)`,
      ["path", "anchors/min", "ratio"],
      [
        [
          "AnchorService → RPC pool → TxSender (this)",
          fmt(newPerMin),
          `${(newPerMin / oldPerMin).toFixed(2)}×`,
        ],
        [
          `ethers NonceManager client (previous)${hung ? `, ${m} anchors before a tx.wait() hung` : ""}`,
          fmt(oldPerMin),
          "1.00×",
        ],
      ],
    );
    out.anchorsPerMinute = {
      sustained: Math.round(newPerMin),
      previousPath: Math.round(oldPerMin),
      previousPathAnchors: m,
      previousPathHungWaits: hung,
      ratio: +(newPerMin / oldPerMin).toFixed(2),
      seconds,
    };
  }

  // ---------------------------------------------------------------- 2. gas and L1 fee
  {
    const r = await rig({ network: "optimism" });
    await installOpPredeploys(r.url);
    const rows: (string | number)[][] = [];
    const res: Record<string, unknown> = {};
    let g = 10;
    for (const keyType of ["secp256k1", "p256"] as KeyType[]) {
      let single = 0;
      for (const perTx of [1, 10]) {
        const gw = gwFor(g++);
        const p = await pipeline(r, await r.registerGateway(gw, keyType), gw, { maxLeaves: 100 });
        await p.ingest(100 * (1 + perTx));
        await p.sealAll();
        // The first anchor of a gateway writes its head slot from zero (once): anchor it alone,
        // then measure one transaction of `perTx` batches in the steady state.
        const first = p.service({ maxBatchesPerTx: 1, maxPerRun: 1 }, { confirmations: 1, pollMs: 20 });
        await first.runOnce();
        await first.stop();
        const svc = p.service({ maxBatchesPerTx: perTx }, { confirmations: 1, pollMs: 20 });
        await svc.runOnce();
        const last = svc.status().lastTx!;
        const anchored = p.store.anchoredThrough();
        if (anchored !== 1 + perTx)
          throw new Error(`expected ${1 + perTx} batches anchored, got ${anchored}`);
        const a = (await p.store.getAnchor(anchored))!;
        const per = last.seqs[1] - last.seqs[0] + 1;
        const gas = last.gasUsed / per;
        const l1 = BigInt(last.l1FeeWei!) / BigInt(per);
        if (perTx === 1) single = gas;
        rows.push([
          `${keyType}, ${perTx === 1 ? "anchor" : `anchorMany ×${per}`}`,
          fmt(gas),
          `${(gas / single).toFixed(2)}×`,
          fmt(Number(l1) / 1e9, 1),
          fmtEth(BigInt(last.costWei) / BigInt(per)),
          a.blockNumber!,
        ]);
        res[`${keyType}_${perTx === 1 ? "anchor" : "anchorMany"}`] = {
          batchesPerTx: per,
          gasPerBatch: Math.round(gas),
          l1FeeWeiPerBatch: String(l1),
          costWeiPerBatch: String(BigInt(last.costWei) / BigInt(per)),
        };
        await svc.stop();
      }
    }
    table(
      `2. Gas and L1 data fee per anchored batch (anvil --network optimism, GasPriceOracle Fjord; L1 base fee ${Number(DEFAULT_L1_FEE.l1BaseFee) / 1e9} gwei, blob ${Number(DEFAULT_L1_FEE.blobBaseFee) / 1e9} gwei, scalars ${DEFAULT_L1_FEE.baseFeeScalar}/${DEFAULT_L1_FEE.blobBaseFeeScalar})`,
      [
        "anchor",
        "L2 gas",
        "vs anchor",
        "L1 data fee, gwei",
        "total ETH (L2 fee at anvil prices + L1)",
        "block",
      ],
      rows,
    );
    out.gasAndL1Fee = res;
  }

  // ---------------------------------------------------------------- 3. seal → final
  {
    const r = await rig({ blockTime: 1 });
    const gw = gwFor(30);
    const p = await pipeline(r, await r.registerGateway(gw), gw, { maxLeaves: 50 });
    const sealedAt = new Map<number, number>();
    const finalAt = new Map<number, number>();
    const svc = p.service(
      {
        maxBatchesPerTx: 1,
        intervalMs: 100,
        nowUs: () => Math.round((performance.timeOrigin + performance.now()) * 1000),
      },
      { confirmations: DEPTH, pollMs: 50 },
    );
    svc.start();
    const N = quick ? 10 : 30;
    for (let i = 0; i < N; i++) {
      await p.ingest(50);
      const b = await p.sealer.sealNow();
      sealedAt.set(b!.header.seq, performance.timeOrigin + now());
      svc.trigger();
      await new Promise((res) => setTimeout(res, 1000));
    }
    const deadline = now() + (DEPTH + 10) * 1000;
    while (svc.status().finalThrough < N && now() < deadline) await new Promise((res) => setTimeout(res, 50));
    await svc.stop();
    for (let s = 1; s <= N; s++) {
      const a = await p.store.getAnchor(s);
      if (a?.finalAtUs) finalAt.set(s, a.finalAtUs / 1000);
    }
    const lat = [...finalAt].map(([s, t]) => (t - sealedAt.get(s)!) / 1000);
    table(
      `3. Seal → final at depth ${DEPTH} (anvil --block-time 1, ${N} batches, one per second)`,
      // Included in the next block (0–1 s after the seal), final `depth − 1` blocks later.
      ["batches final", "p50 s", "p99 s", "max s", "chain alone: (depth − 1 … depth) × block time"],
      [
        [
          `${lat.length}/${N}`,
          fmt(pct(lat, 50), 2),
          fmt(pct(lat, 99), 2),
          fmt(Math.max(...lat), 2),
          `${DEPTH - 1}–${DEPTH} s`,
        ],
      ],
    );
    out.sealToFinalS = {
      depth: DEPTH,
      blockTimeS: 1,
      batches: N,
      final: lat.length,
      p50: +pct(lat, 50).toFixed(2),
      p99: +pct(lat, 99).toFixed(2),
    };
  }

  // ---------------------------------------------------------------- 4. backlog drain
  {
    const r = await rig();
    const rows: (string | number)[][] = [];
    const res: Record<string, unknown> = {};
    let g = 40;
    for (const perTx of [20, 1]) {
      const gw = gwFor(g++);
      const p = await pipeline(r, await r.registerGateway(gw), gw, { maxLeaves: 100 });
      // A 10-minute outage at a 10 s seal interval: 60 batches wait in the outbox.
      await p.ingest(6000);
      await p.sealAll();
      const svc = p.service({ maxBatchesPerTx: perTx, maxPerRun: 100 }, { confirmations: 1, pollMs: 20 });
      const t0 = now();
      while (p.store.anchoredThrough() < 60) await svc.runOnce();
      const s = (now() - t0) / 1000;
      const txs = svc.status().counters.transactions;
      await svc.stop();
      rows.push([
        perTx === 1 ? "anchor, 1 per tx" : `anchorMany, ${perTx} per tx`,
        txs,
        fmt(s, 2),
        fmt((60 / s) * 60),
      ]);
      res[perTx === 1 ? "single" : "anchorMany"] = {
        batchesPerTx: perTx,
        transactions: txs,
        seconds: +s.toFixed(2),
        batchesPerMin: Math.round((60 / s) * 60),
      };
    }
    const ratio =
      (res.anchorMany as { batchesPerMin: number }).batchesPerMin /
      (res.single as { batchesPerMin: number }).batchesPerMin;
    rows[0]!.push(`${ratio.toFixed(2)}×`);
    rows[1]!.push("1.00×");
    table(
      "4. Backlog drain after a 10-minute outage (60 batches × 100 leaves, anvil automine)",
      ["mode", "transactions", "seconds", "batches/min", "ratio"],
      rows,
    );
    out.backlogDrain = { ...res, ratio: +ratio.toFixed(2) };
  }

  // ---------------------------------------------------------------- 5. verify throughput
  {
    const r = await rig();
    const gw = gwFor(50);
    const p = await pipeline(r, await r.registerGateway(gw), gw, { maxLeaves: 1000, device: 0x2a });
    await p.ingest(10_000);
    await p.sealAll();
    const svc = p.service({ maxBatchesPerTx: 10 }, { confirmations: 1, pollMs: 20 });
    await svc.runOnce();
    await svc.stop();
    const bundle = await new ReceiptBuilder(p.store).bundle(0x2a);
    const file = join(freshDir(), "bundle.json");
    writeFileSync(file, JSON.stringify(bundle));
    const io = { out: () => undefined, err: () => undefined };
    const run = async (args: string[]): Promise<number> => {
      const t0 = now();
      const code = await verifyCommand([file, "--deployment", r.deploymentFile, ...args], io);
      if (code !== 0) throw new Error(`vigil verify exited ${code}`);
      return bundle.receipts.length / ((now() - t0) / 1000);
    };
    await run([]); // warm-up (JIT, first-use caches), not counted
    const offline = await run([]);
    const online = await run(["--rpc", r.url]);
    // Baseline: one-shot verification per receipt (a new connection, no shared lookups).
    const trust = {
      chainId: 31337n,
      registry: r.deployment.contracts.VigilRegistry.address,
      fromBlock: r.deployment.deployBlock,
    };
    const sample = bundle.receipts.slice(0, quick ? 100 : 300);
    const t0 = now();
    for (const rc of sample) {
      const v = await verifyReceipt(rc, { trust, rpcUrl: r.url });
      if (!v.ok) throw new Error("baseline verification failed");
    }
    const oneShot = sample.length / ((now() - t0) / 1000);
    table(
      `5. vigil verify on a bundle of ${bundle.receipts.length.toLocaleString("en-US")} receipts (10 batches of 1,000 frames)`,
      ["mode", "receipts/s", "vs one-shot --rpc"],
      [
        ["offline (--deployment)", fmt(offline), `${(offline / oneShot).toFixed(1)}×`],
        ["--rpc (cached per batch and per run)", fmt(online), `${(online / oneShot).toFixed(1)}×`],
        [`one-shot verifyReceipt per receipt with RPC (${sample.length} receipts)`, fmt(oneShot), "1.0×"],
      ],
    );
    out.verify = {
      receipts: bundle.receipts.length,
      offlinePerS: Math.round(offline),
      rpcPerS: Math.round(online),
      oneShotRpcPerS: Math.round(oneShot),
      rpcVsOneShot: +(online / oneShot).toFixed(1),
    };
  }
} finally {
  for (const r of rigs) await r.stop().catch(() => undefined);
}
console.log("");
console.log(JSON.stringify(out));
