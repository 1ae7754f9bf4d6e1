/**
 * `npm run bench -- attest [--quick]`: durability and attestation costs (issue 4).
 *
 * 1. sustained durably-acknowledged frames/s: group commit vs one sync per frame (same run)
 * 2. group-commit policy sweep (flush interval × batch size): throughput and ACK latency
 * 3. keccak implementations; leaf + Merkle build + sign per batch at 1k / 10k / 100k leaves
 * 4. bytes on disk per frame
 * 5. ingest rate while sealing 100k-leaf batches (sliced vs unsliced), event-loop delay
 * 6. seal → anchored latency on anvil
 * Prints tables; the last line is one JSON object.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { keccak256 as ethersKeccak, JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { encodeFrame, FrameType } from "../gateway/src/protocol/frame.ts";
import type { FrameRecord } from "../gateway/src/core/records.ts";
import { LevelFrameStore } from "../gateway/src/store/level.ts";
import { keccak256 } from "../gateway/src/core/keccak.ts";
import { frameLeafInto } from "../gateway/src/core/leaf.ts";
import { MerkleTree } from "../gateway/src/attest/merkle.ts";
import { generateKey } from "../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../gateway/src/attest/signer.ts";
import { BatchSealer } from "../gateway/src/attest/sealer.ts";
import { batchDigest, vigilDomain } from "../gateway/src/chain/eip712.ts";
import { type Hex } from "../gateway/src/core/hex.ts";
import { AnchorService } from "../gateway/src/anchor/service.ts";
import { connectEthersAnchorChain } from "../gateway/src/anchor/chain.ts";
import { benchOptions } from "./lib/options.ts";

const { quick } = benchOptions(import.meta.url, { quick: { type: "boolean" } }, (a) => ({
  quick: a.quick === true,
}));
const CHANNELS = 8;
const BASE_US = 1_764_000_000_000_000;
const root = mkdtempSync(join(tmpdir(), "vigil-bench-attest-"));
// Also on exits that skip `finally` (a benchmark bug leaving a promise unsettled, Ctrl-C).
process.on("exit", () => rmSync(root, { recursive: true, force: true }));
process.on("SIGINT", () => process.exit(130));
let dirN = 0;
const freshDir = (): string => join(root, `s${dirN++}`);
const now = (): number => performance.now();

function rec(dev: number, seq: number): FrameRecord {
  const ts = BASE_US + seq * 1000;
  const values = new Float32Array(CHANNELS);
  for (let i = 0; i < CHANNELS; i++) values[i] = Math.sin(seq + i);
  const raw = encodeFrame({ type: FrameType.Data, deviceId: dev, seq, timestampUs: ts, flags: 0, values });
  return { deviceId: dev, seq, receivedUs: ts + 7, timestampUs: ts, raw };
}

const fmt = (n: number, d = 0): string =>
  n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
function table(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  console.log(`\n${title}`);
  cells.forEach((r, j) => {
    console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  "));
    if (j === 0) console.log(w.map((x) => "-".repeat(x)).join("  "));
  });
}

const openStore = async (
  gc: { flushIntervalMs: number; maxBatchRecords: number },
  dir = freshDir(),
): Promise<LevelFrameStore> => {
  const s = new LevelFrameStore({ dir, groupCommit: gc, reserveBytes: 0, minFreeBytes: 0 });
  await s.open();
  return s;
};

/**
 * Closed-loop load: `window` outstanding appends (devices × unacknowledged frames each, as
 * MCUs resend what is not ACKed), refilled as ACKs arrive, for `total` frames or `maxMs`.
 */
async function drive(
  store: LevelFrameStore,
  total: number,
  window: number,
  devices: number,
  maxMs = Infinity,
  seq0 = 0,
) {
  const lat: number[] = [];
  let sent = 0;
  let done = 0;
  const t0 = now();
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (sent - done < window && sent < total && now() - t0 < maxMs) {
        const i = sent++;
        const t = now();
        store.append(rec(i % devices, seq0 + Math.floor(i / devices))).then(() => {
          lat.push(now() - t);
          done++;
          if (done === sent && (sent >= total || now() - t0 >= maxMs)) resolve();
          else pump();
        }, reject);
      }
    };
    pump();
  });
  const secs = (now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    frames: done,
    fps: done / secs,
    p50: lat[Math.floor(lat.length * 0.5)] ?? 0,
    p99: lat[Math.floor(lat.length * 0.99)] ?? 0,
  };
}

function duBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    n += f.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return n;
}

const out: Record<string, unknown> = {
  bench: "attest",
  quick,
  channels: CHANNELS,
  frameBytes: rec(1, 1).raw.length,
};

try {
  // ---------------------------------------------------------------- 1. durable ingest
  const WINDOW = 4096; // e.g. 128 devices × 32 unacknowledged frames (the reference MCU ring)
  const DEVICES = 128;
  const N = quick ? 100_000 : 300_000;
  let s = await openStore({ flushIntervalMs: 1, maxBatchRecords: 2000 });
  await drive(s, 20_000, WINDOW, DEVICES); // warm-up
  const gc = await drive(s, N, WINDOW, DEVICES, Infinity, 1_000_000);
  await s.close();
  s = await openStore({ flushIntervalMs: 0, maxBatchRecords: 1 });
  const base = await drive(s, 1_000_000, WINDOW, DEVICES, quick ? 2000 : 4000);
  await s.close();
  table(
    "1. Durably acknowledged frames (LevelDB, sync: true before every ACK; 4096 outstanding, 128 devices)",
    ["mode", "frames", "frames/s", "ACK p50 ms", "ACK p99 ms"],
    [
      ["group commit (1 ms / 2000)", gc.frames, fmt(gc.fps), fmt(gc.p50, 2), fmt(gc.p99, 2)],
      ["one sync per frame", base.frames, fmt(base.fps), fmt(base.p50, 2), fmt(base.p99, 2)],
      ["speed-up", "", `${fmt(gc.fps / base.fps, 1)}×`, "", ""],
    ],
  );
  out.durable = {
    groupCommitFps: Math.round(gc.fps),
    oneSyncPerFrameFps: Math.round(base.fps),
    speedup: +(gc.fps / base.fps).toFixed(1),
    ackP50Ms: +gc.p50.toFixed(2),
    ackP99Ms: +gc.p99.toFixed(2),
  };

  // ---------------------------------------------------------------- 2. policy sweep
  const sweep: (string | number)[][] = [];
  const sweepOut: unknown[] = [];
  // Node clamps setTimeout(fn, 0) to 1 ms, so 0 and 1 are the same policy.
  const grid: [number, number, number][] = quick
    ? [
        [1, 2000, 4096],
        [1, 2000, 256],
        [1, 2000, 32],
      ]
    : [
        [1, 2000, 4096],
        [2, 2000, 4096],
        [5, 2000, 4096],
        [1, 500, 4096],
        [5, 5000, 4096],
        [1, 2000, 256],
        [5, 2000, 256],
        [1, 2000, 32],
        [5, 2000, 32],
      ];
  for (const [ms, max, win] of grid) {
    const st = await openStore({ flushIntervalMs: ms, maxBatchRecords: max });
    const r = await drive(st, quick ? 40_000 : 80_000, win, Math.min(DEVICES, win), 3000);
    const commits = st.stats().commits;
    await st.close();
    sweep.push([
      `${ms} ms / ${max}`,
      win,
      fmt(r.fps),
      fmt(r.frames / commits, 0),
      fmt(r.p50, 2),
      fmt(r.p99, 2),
    ]);
    sweepOut.push({
      flushIntervalMs: ms,
      maxBatchRecords: max,
      outstanding: win,
      fps: Math.round(r.fps),
      perSync: Math.round(r.frames / commits),
      p50: +r.p50.toFixed(2),
      p99: +r.p99.toFixed(2),
    });
  }
  table(
    "2. Group-commit policy (flushIntervalMs / maxBatchRecords) × outstanding frames",
    ["policy", "outstanding", "frames/s", "frames/sync", "p50 ms", "p99 ms"],
    sweep,
  );
  out.policy = sweepOut;

  // ---------------------------------------------------------------- 3. hashing, tree, signing
  const input = new Uint8Array(64).map((_, i) => i);
  const kb = (f: () => void, n = 200_000): number => {
    for (let i = 0; i < 20_000; i++) f();
    const t = now();
    for (let i = 0; i < n; i++) f();
    return ((now() - t) * 1000) / n;
  };
  const kRows: [string, number][] = [
    ["@noble/hashes keccak_256", kb(() => keccak_256(input))],
    ["ethers keccak256", kb(() => ethersKeccak(input))],
    ["attest/keccak.ts", kb(() => keccak256(input))],
  ];
  try {
    const js = (await import("js-sha3" as string)) as {
      default: { keccak256: { arrayBuffer(d: Uint8Array): ArrayBuffer } };
    };
    kRows.push(["js-sha3 (transitive dep, not used)", kb(() => js.default.keccak256.arrayBuffer(input))]);
  } catch {
    // not installed
  }
  table(
    "3a. keccak256 of 64 bytes",
    ["implementation", "µs/hash"],
    kRows.map(([n, us]) => [n, fmt(us, 2)]),
  );
  out.keccak64Us = Object.fromEntries(kRows.map(([n, us]) => [n, +us.toFixed(2)]));

  const signers = {
    secp256k1: new GatewaySigner(generateKey("secp256k1")),
    p256: new GatewaySigner(generateKey("p256")),
  };
  const domain = vigilDomain(31337, "0x" + "44".repeat(20));
  const tRows: (string | number)[][] = [];
  const treeOut: unknown[] = [];
  for (const n of [1000, 10_000, 100_000]) {
    const recs = Array.from({ length: n }, (_, i) => rec(i % 64, i));
    const leaves = new Uint8Array(32 * n);
    let best = { leaf: Infinity, tree: Infinity };
    for (let rep = 0; rep < (n >= 100_000 ? 3 : 5); rep++) {
      const t0 = now();
      for (let i = 0; i < n; i++) frameLeafInto(recs[i]!, leaves, 32 * i);
      const t1 = now();
      MerkleTree.fromPacked(leaves);
      const t2 = now();
      best = { leaf: Math.min(best.leaf, t1 - t0), tree: Math.min(best.tree, t2 - t1) };
    }
    const tree = MerkleTree.fromPacked(leaves);
    const header = {
      gatewayId: ("0x" + "ab".repeat(32)) as Hex,
      seq: 1n,
      prevHead: ("0x" + "00".repeat(32)) as Hex,
      root: ("0x" + Buffer.from(tree.root).toString("hex")) as Hex,
      leafCount: n,
      firstTimestamp: 1n,
      lastTimestamp: 2n,
      modelHash: ("0x" + "00".repeat(32)) as Hex,
    };
    const ts = now();
    const digest = batchDigest(domain, header);
    signers.secp256k1.sign(digest);
    const tk = now();
    signers.p256.sign(digest);
    const tp = now();
    const perFrame = ((best.leaf + best.tree + (tk - ts)) * 1000) / n;
    tRows.push([
      fmt(n),
      fmt(best.leaf, 1),
      fmt(best.tree, 1),
      fmt(tk - ts, 2),
      fmt(tp - tk, 2),
      fmt(best.leaf + best.tree + (tk - ts), 1),
      fmt(perFrame, 2),
    ]);
    treeOut.push({
      leaves: n,
      leafMs: +best.leaf.toFixed(2),
      treeMs: +best.tree.toFixed(2),
      signSecpMs: +(tk - ts).toFixed(2),
      signP256Ms: +(tp - tk).toFixed(2),
      perFrameUs: +perFrame.toFixed(2),
    });
  }
  table(
    "3b. Batch: FRAME leaves + Merkle tree + EIP-712 digest + signature",
    ["leaves", "leaves ms", "tree ms", "secp256k1 ms", "P-256 ms", "total ms", "µs/frame"],
    tRows,
  );
  out.batch = treeOut;

  // ---------------------------------------------------------------- 4. bytes on disk
  const dDir = freshDir();
  const ds = await openStore({ flushIntervalMs: 1, maxBatchRecords: 2000 }, dDir);
  const DN = quick ? 100_000 : 200_000;
  await drive(ds, DN, WINDOW, DEVICES);
  await ds.close();
  const dsz = duBytes(join(dDir, "db"));
  // After compaction (LevelDB compresses with Snappy; float values compress poorly).
  const { ClassicLevel } = await import("classic-level");
  const db = new ClassicLevel(join(dDir, "db"));
  await db.open();
  await db.compactRange("\x00", "\xff");
  await db.close();
  const csz = duBytes(join(dDir, "db"));
  table(
    "4. Bytes on disk per frame (8-channel DATA frame of 58 bytes, log + (device, seq) index)",
    ["state", "bytes/frame"],
    [
      ["after ingest (WAL + L0)", fmt(dsz / DN, 1)],
      ["after compaction", fmt(csz / DN, 1)],
    ],
  );
  out.diskBytesPerFrame = { afterIngest: +(dsz / DN).toFixed(1), compacted: +(csz / DN).toFixed(1) };

  // ---------------------------------------------------------------- 5. ingest while sealing
  const sealRows: (string | number)[][] = [];
  const sealOut: unknown[] = [];
  const PRE = 100_000;
  for (const [label, slice] of [
    ["sliced (2048 hashes/turn)", 2048],
    ["unsliced", Number.MAX_SAFE_INTEGER],
  ] as const) {
    const st = await openStore({ flushIntervalMs: 1, maxBatchRecords: 2000 });
    await drive(st, PRE, WINDOW, DEVICES);
    const sealer = new BatchSealer({
      store: st,
      signer: signers.secp256k1,
      gatewayId: ("0x" + "ab".repeat(32)) as Hex,
      domain,
      maxLeaves: PRE,
      sliceHashes: slice,
    });
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = now();
    let sealMs = 0;
    const sealing = sealer.sealNow().then(() => (sealMs = now() - t0));
    // Measure ingest for exactly as long as the seal takes.
    let ingested = 0;
    const tI = now();
    let stop = false;
    void sealing.then(() => (stop = true));
    let seq = 10_000_000;
    let inflight = 0;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (!stop && inflight < WINDOW) {
          inflight++;
          const i = seq++;
          st.append(rec(i % DEVICES, i)).then(() => {
            inflight--;
            ingested++;
            if (stop && inflight === 0) resolve();
            else pump();
          });
        }
        if (stop && inflight === 0) resolve();
      };
      pump();
    });
    const dur = (now() - tI) / 1000;
    h.disable();
    await sealing;
    await st.close();
    sealRows.push([
      label,
      fmt(sealMs, 0),
      fmt(ingested / dur),
      fmt(h.max / 1e6, 1),
      fmt(h.percentile(99) / 1e6, 1),
    ]);
    sealOut.push({
      mode: label,
      sealMs: Math.round(sealMs),
      ingestFps: Math.round(ingested / dur),
      loopDelayMaxMs: +(h.max / 1e6).toFixed(1),
      loopDelayP99Ms: +(h.percentile(99) / 1e6).toFixed(1),
    });
  }
  table(
    "5. Ingest while sealing a 100k-frame batch (read back + leaves + tree + sign + save)",
    ["sealer", "seal ms", "ingest frames/s", "loop delay max ms", "p99 ms"],
    sealRows,
  );
  out.ingestWhileSealing = sealOut;

  // ---------------------------------------------------------------- 6. seal → anchored on anvil
  try {
    const { ANVIL_DEV_KEYS, startAnvil } = await import("../gateway/src/chain/anvil.ts");
    const { deployVigil } = await import("../gateway/src/chain/deploy.ts");
    const { EthersRegistryClient } = await import("../gateway/src/chain/ethers-client.ts");
    const anvil = await startAnvil({});
    try {
      const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true });
      provider.pollingInterval = 20;
      const d = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider)), {
        adminDelaySeconds: 0,
      });
      provider.destroy();
      const admin = await EthersRegistryClient.connect({
        rpcUrl: anvil.url,
        privateKey: ANVIL_DEV_KEYS[0],
        registry: d.contracts.VigilRegistry.address,
        releases: d.contracts.VigilReleases.address,
        pollingIntervalMs: 20,
      });
      const gw = ("0x" + "ab".repeat(32)) as Hex;
      const site = ("0x" + "51".repeat(32)) as Hex;
      await admin.grantOperator(site, admin.account);
      await admin.registerGateway({
        gatewayId: gw,
        site,
        keyType: "secp256k1",
        publicKey: signers.secp256k1.publicKey,
        metadataURI: "",
      });
      const st = await openStore({ flushIntervalMs: 1, maxBatchRecords: 2000 });
      const sealer = new BatchSealer({
        store: st,
        signer: signers.secp256k1,
        gatewayId: gw,
        domain: admin.domain(),
        maxLeaves: 10_000,
      });
      const sealedAt = new Map<number, number>();
      const lat: number[] = [];
      const svc = new AnchorService({
        store: st,
        gatewayId: gw,
        connect: () =>
          connectEthersAnchorChain({
            rpcUrl: anvil.url,
            senderPrivateKey: ANVIL_DEV_KEYS[1],
            registry: d.contracts.VigilRegistry.address,
            releases: d.contracts.VigilReleases.address,
            confirmations: 1,
            pollingIntervalMs: 20,
          }),
        intervalMs: 1000,
        onAnchored: (b) => lat.push(now() - sealedAt.get(b.header.seq)!),
      });
      svc.start();
      const B = quick ? 5 : 10;
      for (let i = 0; i < B; i++) {
        await drive(st, 10_000, WINDOW, DEVICES, Infinity, i * 1000);
        const b = await sealer.sealNow();
        sealedAt.set(b!.header.seq, now());
        svc.trigger();
        while (st.anchoredThrough() < b!.header.seq) await new Promise((r) => setTimeout(r, 5));
      }
      await svc.stop();
      await st.close();
      await admin.close();
      lat.sort((a, b) => a - b);
      table(
        "6. Seal → anchored on anvil (automine, 1 confirmation, 10k-leaf batches)",
        ["batches", "p50 ms", "max ms"],
        [[B, fmt(lat[Math.floor(lat.length / 2)]!, 1), fmt(lat.at(-1)!, 1)]],
      );
      out.sealToAnchoredMs = {
        batches: B,
        p50: +lat[Math.floor(lat.length / 2)]!.toFixed(1),
        max: +lat.at(-1)!.toFixed(1),
      };
    } finally {
      await anvil.stop();
    }
  } catch (e) {
    console.log(`\n6. Seal → anchored on anvil: skipped (${(e as Error).message.split("\n")[0]})`);
    out.sealToAnchoredMs = null;
  }

  const g = out.durable as { groupCommitFps: number; speedup: number };
  const b100k = (out.batch as { perFrameUs: number }[])[2]!;
  out.targets = {
    durableFps50k: g.groupCommitFps >= 50_000,
    speedup10x: g.speedup >= 10,
    overheadUnder3us: b100k.perFrameUs <= 3,
  };
} finally {
  rmSync(root, { recursive: true, force: true });
}
console.log("");
console.log(JSON.stringify(out));
