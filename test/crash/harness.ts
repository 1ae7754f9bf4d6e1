/**
 * Crash harness (`npm run test:crash -- [--kills 50] [--seed 1] [--devices 4] [--rate 200]`).
 *
 * Runs the gateway (`vigil start`, embedded broker, LevelDB store, batch sealing) and the
 * simulator (`vigil sim` over MQTT, resending what was not acknowledged) as separate
 * processes, and sends SIGKILL to the gateway at random moments, restarting it each time.
 * Afterwards, with the gateway stopped, it opens the store and checks:
 *   1. every frame the simulator saw acknowledged is in the log exactly once
 *      (the simulator runs without faults and drains, so that is every frame it generated);
 *   2. batch sequences are consecutive and never reused, each links to the previous head;
 *   3. every sealed batch still verifies: its stored leaves equal the leaves recomputed from
 *      the stored frames, and a receipt from each batch verifies offline (leaf → root →
 *      EIP-712 signature by the gateway key).
 * Prints a table and, as its last line, one JSON object. Exit 1 on any violation.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Rng } from "../../device-sim/src/rng.ts";
import type { SimReport } from "../../device-sim/src/simulator.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { frameLeaf } from "../../gateway/src/core/leaf.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { fromRoot } from "../../gateway/src/core/paths.ts";
import { freePort } from "../helpers/procs.ts";

export interface CrashOptions {
  kills: number;
  seed: number;
  devices: number;
  rate: number;
  /** Print progress lines. */
  verbose: boolean;
}

export interface CrashResult {
  kills: number;
  seed: number;
  durationS: number;
  framesGenerated: number;
  framesAcked: number;
  framesStored: number;
  duplicatesInLog: number;
  missingFromLog: number;
  batches: number;
  batchViolations: string[];
  resent: number;
  ok: boolean;
}

const PASSPHRASE = "crash-harness-passphrase";
const VIGIL = fromRoot("bin", "vigil.js");

function waitPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(port, "127.0.0.1", () => {
        s.end();
        resolve();
      });
      s.on("error", () => {
        if (Date.now() > end) reject(new Error(`gateway did not listen on ${port} within ${ms} ms`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runCrashHarness(o: CrashOptions): Promise<CrashResult> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "vigil-crash-"));
  const rng = new Rng(o.seed);
  const port = await freePort();
  // A deployment file gives the EIP-712 domain; no RPC: batches are sealed, not anchored.
  writeFileSync(
    join(dir, "deployment.json"),
    JSON.stringify({
      format: "vigil-deployment/1",
      chainId: "31337",
      contracts: {
        VigilRegistry: { address: "0x5fbdb2315678afecb367f032d93f642f64180aa3" },
        VigilReleases: { address: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512" },
      },
    }),
  );
  await writeKeystore(join(dir, "gateway.key"), generateKey("secp256k1"), PASSPHRASE, { N: 1 << 10 });
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: dir,
      mqtt: { embedded: { port } },
      store: { minFreeBytes: 0, reserveBytes: 0 },
      attest: { batchIntervalMs: 300, batchMaxLeaves: 700 },
      chain: { deployment: "deployment.json" },
      models: { enabled: false },
      log: { level: "warn", statsIntervalMs: 100_000 },
    }),
  );
  const env = { ...process.env, VIGIL_KEYSTORE_PASSPHRASE: PASSPHRASE };
  let gateway: ChildProcess | undefined;
  const startGateway = async () => {
    gateway = spawn(process.execPath, [VIGIL, "start", "--config", config], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitPort(port, 20_000);
  };
  const log = (s: string) => o.verbose && process.stderr.write(`crash: ${s}\n`);

  await startGateway();
  // Enough frames to outlast the kills; the simulator resends unacknowledged frames itself.
  const perKillMs = 900;
  const durationS = Math.max(3, Math.ceil((o.kills * perKillMs) / 1000));
  const sim = spawn(
    process.execPath,
    [
      VIGIL,
      "sim",
      "--mqtt",
      `mqtt://127.0.0.1:${port}`,
      "--devices",
      String(o.devices),
      "--rate",
      String(o.rate),
      "--duration",
      String(durationS),
      "--seed",
      String(o.seed),
      "--resend-ms",
      "300",
      "--drain-ms",
      "60000",
      // A ring large enough that no device drops a frame while the gateway is down.
      "--window",
      "1000000",
      "--json",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let simOut = "";
  sim.stdout?.on("data", (d: Buffer) => (simOut += d.toString()));
  const simDone = new Promise<number>((res) => sim.once("exit", (c) => res(c ?? 1)));

  for (let k = 1; k <= o.kills; k++) {
    await sleep(rng.int(150, 1200));
    const g = gateway!;
    const exited = new Promise((r) => g.once("exit", r));
    g.kill("SIGKILL");
    await exited;
    log(`kill ${k}/${o.kills}`);
    await sleep(rng.int(20, 300));
    await startGateway();
  }
  const simCode = await simDone;
  // A clean stop at the end (SIGTERM), then inspect the store.
  const g = gateway!;
  const exited = new Promise((r) => g.once("exit", r));
  g.kill("SIGTERM");
  await exited;

  let report: SimReport;
  try {
    report = JSON.parse(simOut.trim().split("\n").pop() ?? "") as SimReport;
  } catch {
    throw new Error(`simulator exited ${simCode} without a JSON report`);
  }

  const store = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
  await store.open();
  const violations: string[] = [];
  let stored = 0;
  let dupes = 0;
  const seen = new Map<string, number>();
  for await (const f of store.framesByIndex(1, store.stats().lastIndex)) {
    stored++;
    const key = `${f.deviceId}:${f.seq}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    if (n > 1) dupes++;
  }
  let missing = 0;
  for (const gt of report.groundTruth)
    for (let s = 0; s < gt.framesGenerated; s++) if (!seen.has(`${gt.deviceId}:${s}`)) missing++;

  // Batches: consecutive, linked, leaves recomputable, a receipt from each verifies.
  const receipts = new ReceiptBuilder(store);
  let prevHead = "0x" + "00".repeat(32);
  let prevLast = 0;
  const lastSeq = store.lastBatchSeq();
  for (let seq = 1; seq <= lastSeq; seq++) {
    const b = await store.getBatch(seq);
    if (!b) {
      violations.push(`batch ${seq} missing`);
      continue;
    }
    if (b.header.seq !== seq) violations.push(`batch ${seq} has header seq ${b.header.seq}`);
    if (b.header.prevHead !== prevHead) violations.push(`batch ${seq} does not link to batch ${seq - 1}`);
    if (b.firstIndex !== prevLast + 1)
      violations.push(`batch ${seq} starts at ${b.firstIndex}, expected ${prevLast + 1}`);
    const leaves = await store.getBatchLeaves(seq);
    let i = 0;
    for await (const f of store.framesByIndex(b.firstIndex, b.lastIndex)) {
      const want = Buffer.from(frameLeaf(f));
      const got = leaves ? Buffer.from(leaves.subarray(i * 32, i * 32 + 32)) : Buffer.alloc(0);
      if (!want.equals(got)) {
        violations.push(`batch ${seq} leaf ${i} differs from its frame`);
        break;
      }
      i++;
    }
    if (i !== b.header.leafCount)
      violations.push(`batch ${seq}: ${i} frames for ${b.header.leafCount} leaves`);
    const r = await verifyReceipt(await receipts.forIndex(b.firstIndex));
    if (!r.ok) violations.push(`batch ${seq}: receipt fails (${r.reason}: ${r.message})`);
    prevHead = b.head;
    prevLast = b.lastIndex;
  }
  await store.close();
  rmSync(dir, { recursive: true, force: true });

  const ok =
    simCode === 0 &&
    report.pending === 0 &&
    report.acked === report.generated &&
    dupes === 0 &&
    missing === 0 &&
    stored === report.generated &&
    lastSeq > 0 &&
    violations.length === 0;
  return {
    kills: o.kills,
    seed: o.seed,
    durationS: Math.round((Date.now() - t0) / 100) / 10,
    framesGenerated: report.generated,
    framesAcked: report.acked,
    framesStored: stored,
    duplicatesInLog: dupes,
    missingFromLog: missing,
    batches: lastSeq,
    batchViolations: violations,
    resent: report.resent,
    ok,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values: a } = parseArgs({
    options: {
      kills: { type: "string" },
      seed: { type: "string" },
      devices: { type: "string" },
      rate: { type: "string" },
    },
  });
  const r = await runCrashHarness({
    kills: Number(a.kills ?? 50),
    seed: Number(a.seed ?? 1),
    devices: Number(a.devices ?? 4),
    rate: Number(a.rate ?? 200),
    verbose: true,
  });
  console.log("crash harness (SIGKILL the gateway at random moments, simulator resends)");
  const rows: Array<[string, string | number]> = [
    ["kills", r.kills],
    [
      "frames generated / acknowledged / stored",
      `${r.framesGenerated} / ${r.framesAcked} / ${r.framesStored}`,
    ],
    ["duplicates in log", r.duplicatesInLog],
    ["acknowledged frames missing from log", r.missingFromLog],
    ["frames resent by devices", r.resent],
    ["batches sealed (all verified)", r.batches],
    ["batch violations", r.batchViolations.length ? r.batchViolations.slice(0, 5).join("; ") : 0],
    ["result", r.ok ? "PASS" : "FAIL"],
    ["seconds", r.durationS],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(42)} ${v}`);
  console.log(JSON.stringify(r));
  process.exitCode = r.ok ? 0 : 1;
}
