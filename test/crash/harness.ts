/**
 * Crash harness (`npm run test:crash -- [--kills 50] [--seed 1] [--devices 4] [--rate 200]`).
 *
 * Runs the whole gateway (`vigil start`: embedded broker, LevelDB store, the models, batch
 * sealing and anchoring to a local anvil) and the simulator (`vigil sim` over MQTT, resending
 * what was not acknowledged) as separate processes, and sends SIGKILL to the gateway at random
 * moments while frames are flowing (a kill waits until the simulator has seen new
 * acknowledgements since the last restart), restarting it each time. Afterwards, with the gateway
 * stopped, an independent reader (test/helpers/store-reader.ts: LevelDB decoded from the
 * documented layout, no store code) checks:
 *   1. every frame the simulator saw acknowledged is on disk exactly once; frames the devices
 *      still held unacknowledged at the end are reported apart ("never acknowledged" is not
 *      "acknowledged and missing");
 *   2. batch sequences are consecutive, each links to the previous head, every batch's packed
 *      leaves equal the leaves recomputed from the stored entries, and a receipt from each batch
 *      verifies (leaf → root → EIP-712 signature);
 *   3. the registry's head for the gateway is the head of the last batch the store says it
 *      anchored.
 * Prints a table and, as its last line, one JSON object. Exit 1 on any violation.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Rng } from "../../device-sim/src/rng.ts";
import type { SimReport, SimSnapshot } from "../../device-sim/src/simulator.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { frameLeaf } from "../../gateway/src/core/leaf.ts";
import { fromRoot } from "../../gateway/src/core/paths.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { keccak256, toUtf8Bytes } from "ethers";
import { localChain } from "../helpers/chain.ts";
import { freePort } from "../helpers/procs.ts";
import { readStoreFromDisk } from "../helpers/store-reader.ts";

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
  /** Kills that landed while the gateway was acknowledging frames. */
  killsWhileFlowing: number;
  seed: number;
  durationS: number;
  framesGenerated: number;
  framesAcked: number;
  framesStored: number;
  /** The broken promise: frames a device saw acknowledged that are not on disk. */
  acknowledgedButMissing: number;
  /** Frames on disk more than once. */
  storedTwice: number;
  /** Frames the devices still held unacknowledged at the end (not a violation; reported). */
  neverAcknowledged: number;
  batches: number;
  batchesAnchored: number;
  violations: string[];
  resent: number;
  ok: boolean;
}

const GATEWAY_NAME = "crash-gw";
const VIGIL = fromRoot("bin", "vigil.js");

function waitPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runCrashHarness(o: CrashOptions): Promise<CrashResult> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "vigil-crash-"));
  const rng = new Rng(o.seed);
  const port = await freePort();
  const gatewayId = keccak256(toUtf8Bytes(`vigil-gateway:${GATEWAY_NAME}`)) as Hex;
  const chain = await localChain({ dataDir: dir, gatewayId });
  const log = (s: string): void => void (o.verbose && process.stderr.write(`crash: ${s}\n`));
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: dir,
      mqtt: { embedded: { port } },
      store: { minFreeBytes: 0, reserveBytes: 0 },
      attest: { gatewayName: GATEWAY_NAME, batchIntervalMs: 300, batchMaxLeaves: 700 },
      chain: {
        rpcUrl: chain.anvil.url,
        deployment: chain.deploymentFile,
        anchorIntervalMs: 300,
        // anvil mines only when a transaction arrives: a deeper finality would wait for blocks that never come
        confirmations: 1,
      },
      log: { level: "debug", statsIntervalMs: 0 },
    }),
  );
  const env = {
    ...process.env,
    VIGIL_KEYSTORE_PASSPHRASE: chain.passphrase,
    VIGIL_CHAIN_SENDER_KEY: chain.senderKey,
  };
  // The gateway's log (JSON lines, appended across restarts) stays beside the store when a run fails.
  const gatewayLog = openSync(join(dir, "gateway.log"), "a");
  let gateway: ChildProcess | undefined;
  const startGateway = async (): Promise<void> => {
    gateway = spawn(process.execPath, [VIGIL, "start", "--config", config], {
      env,
      stdio: ["ignore", gatewayLog, gatewayLog],
    });
    // Under load (two shared cores) loading the models can take seconds.
    await waitPort(port, 60_000);
  };
  const stopGateway = async (signal: NodeJS.Signals): Promise<void> => {
    const g = gateway!;
    if (g.exitCode !== null) return;
    const exited = new Promise((r) => g.once("exit", r));
    g.kill(signal);
    await exited;
  };

  let result: CrashResult | undefined;
  try {
    await startGateway();
    // The devices generate until every kill has landed (SIGTERM ends generation, then they drain),
    // however slow the restarts are on a loaded machine.
    const durationS = 3600;
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
        "--life",
        "1000000", // machines do not fail (their signal would end) during the run
        "--resend-ms",
        "300",
        "--drain-ms",
        "90000",
        // A ring large enough that no device drops a frame while the gateway is down.
        "--window",
        "1000000",
        "--json",
        "--progress-ms",
        "100",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let last: SimSnapshot | undefined;
    let report: SimReport | undefined;
    let buf = "";
    sim.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as { type: string } & SimReport;
        if (m.type === "progress") last = m;
        else if (m.type === "report") report = m;
      }
    });
    const simDone = new Promise<number>((res) => sim.once("exit", (c) => res(c ?? 1)));

    let killsWhileFlowing = 0;
    for (let k = 1; k <= o.kills; k++) {
      // Kill only while frames flow: new acknowledgements since the last restart, and the
      // devices still generating.
      const ackedAtStart = last?.acked ?? 0;
      const flowDeadline = Date.now() + 30_000;
      while ((last?.acked ?? 0) <= ackedAtStart && Date.now() < flowDeadline) await sleep(20);
      await sleep(rng.int(50, 900));
      const flowing = (last?.acked ?? 0) > ackedAtStart;
      if (flowing) killsWhileFlowing++;
      await stopGateway("SIGKILL");
      log(`kill ${k}/${o.kills}${flowing ? "" : " (no frames flowing)"}`);
      await sleep(rng.int(20, 300));
      await startGateway();
    }
    // Frames flow again after the last restart; then the devices stop generating and drain
    // (resend everything not yet acknowledged), and the gateway stops cleanly.
    const ackedAfterLast = last?.acked ?? 0;
    const flowDeadline = Date.now() + 30_000;
    while ((last?.acked ?? 0) <= ackedAfterLast && Date.now() < flowDeadline) await sleep(20);
    sim.kill("SIGTERM");
    const simCode = await simDone;
    if (!report) throw new Error(`simulator exited ${simCode} without a JSON report`);
    await stopGateway("SIGTERM");

    const violations: string[] = [];
    const disk = await readStoreFromDisk(join(dir, "store"));
    const onDisk = new Map<string, number>();
    for (const f of disk.frames) {
      const key = `${f.deviceId}:${f.seq}`;
      onDisk.set(key, (onDisk.get(key) ?? 0) + 1);
    }
    const storedTwice = [...onDisk.values()].filter((n) => n > 1).length;
    let missing = 0;
    let neverAcked = 0;
    for (const gt of report.groundTruth) {
      const held = new Set(gt.pendingSeqs);
      for (let s = 0; s < gt.framesGenerated; s++) {
        if (held.has(s)) neverAcked++;
        else if (!onDisk.has(`${gt.deviceId}:${s}`)) missing++;
      }
    }

    // Batches, from the independent reader.
    const entries = new Map<number, Buffer>();
    for (const f of disk.frames)
      entries.set(f.index, Buffer.from(frameLeaf({ seq: f.seq, receivedUs: f.receivedUs, raw: f.raw })));
    for (const [i, h] of disk.leafHashes) entries.set(i, h);
    let prevHead = "0x" + "00".repeat(32);
    let prevLast = 0;
    disk.batches.sort((a, b) => a.seq - b.seq);
    for (const [i, b] of disk.batches.entries()) {
      const j = b.json;
      if (b.seq !== i + 1 || j.header.seq !== b.seq) violations.push(`batch ${b.seq} out of sequence`);
      if (j.header.prevHead !== prevHead)
        violations.push(`batch ${b.seq} does not link to batch ${b.seq - 1}`);
      if (j.firstIndex !== prevLast + 1)
        violations.push(`batch ${b.seq} starts at ${j.firstIndex}, expected ${prevLast + 1}`);
      for (let x = j.firstIndex; x <= j.lastIndex; x++) {
        const want = entries.get(x);
        const got = b.leaves.subarray(32 * (x - j.firstIndex), 32 * (x - j.firstIndex + 1));
        if (!want || !want.equals(got)) {
          violations.push(
            `batch ${b.seq}: entry ${x} ${want ? "differs from its sealed leaf" : "is missing"}`,
          );
          break;
        }
      }
      prevHead = j.head;
      prevLast = j.lastIndex;
    }
    // A receipt from each batch verifies (the product's receipt path, over the stopped store).
    const store = new LevelFrameStore({
      dir: join(dir, "store"),
      reserveBytes: 0,
      minFreeBytes: 0,
      create: false,
    });
    await store.open();
    try {
      const receipts = new ReceiptBuilder(store);
      for (const b of disk.batches) {
        // The batch's first frame: an entry may be an inference or alert leaf (the index space is
        // shared), and a receipt is built for a frame.
        let first: number | undefined;
        for (let x = b.json.firstIndex; x <= b.json.lastIndex && first === undefined; x++)
          if (await store.getFrame(x)) first = x;
        if (first === undefined) continue; // leaves only: no frame to prove
        const r = await verifyReceipt(await receipts.forIndex(first));
        if (!r.ok) violations.push(`batch ${b.seq}: receipt fails (${r.reason}: ${r.message})`);
      }
    } finally {
      await store.close();
    }
    // The chain agrees with what the store says it anchored.
    const reader = await EthersRegistryClient.connect({
      rpcUrl: chain.anvil.url,
      privateKey: chain.senderKey,
      registry: chain.deployment.contracts.VigilRegistry.address,
      releases: chain.deployment.contracts.VigilReleases.address,
    });
    try {
      const head = await reader.getHead(gatewayId);
      const anchoredBatch = disk.batches.find((b) => b.seq === disk.anchoredThrough);
      if (Number(head.seq) !== disk.anchoredThrough)
        violations.push(
          `the registry is at seq ${head.seq}, the store says ${disk.anchoredThrough} anchored`,
        );
      else if (anchoredBatch && head.head.toLowerCase() !== anchoredBatch.json.head.toLowerCase())
        violations.push(`the registry's head differs from batch ${disk.anchoredThrough}'s head`);
    } finally {
      await reader.close();
    }

    const acked = report.groundTruth.reduce((a, g) => a + g.framesGenerated, 0) - neverAcked;
    result = {
      kills: o.kills,
      killsWhileFlowing,
      seed: o.seed,
      durationS: Math.round((Date.now() - t0) / 100) / 10,
      framesGenerated: report.generated,
      framesAcked: acked,
      framesStored: disk.frames.length,
      acknowledgedButMissing: missing,
      storedTwice,
      neverAcknowledged: neverAcked,
      batches: disk.batches.length,
      batchesAnchored: disk.anchoredThrough,
      violations,
      resent: report.resent,
      ok:
        missing === 0 &&
        storedTwice === 0 &&
        violations.length === 0 &&
        disk.batches.length > 0 &&
        killsWhileFlowing === o.kills,
    };
    return result;
  } finally {
    await stopGateway("SIGKILL").catch(() => undefined);
    await chain.stop();
    closeSync(gatewayLog);
    if (result?.ok) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`crash: the failed run's data folder and gateway.log are kept in ${dir}\n`);
  }
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
  console.log("crash harness (SIGKILL the whole gateway while frames flow; the simulator resends)");
  const rows: Array<[string, string | number]> = [
    ["kills (while frames were flowing)", `${r.kills} (${r.killsWhileFlowing})`],
    [
      "frames generated / acknowledged / on disk",
      `${r.framesGenerated} / ${r.framesAcked} / ${r.framesStored}`,
    ],
    ["acknowledged but missing (the promise)", r.acknowledgedButMissing],
    ["stored twice", r.storedTwice],
    ["never acknowledged (still held by devices)", r.neverAcknowledged],
    ["frames resent by devices", r.resent],
    ["batches sealed / anchored (all verified)", `${r.batches} / ${r.batchesAnchored}`],
    ["violations", r.violations.length ? r.violations.slice(0, 5).join("; ") : 0],
    ["result", r.ok ? "PASS" : "FAIL"],
    ["seconds", r.durationS],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(44)} ${v}`);
  console.log(JSON.stringify(r));
  process.exitCode = r.ok ? 0 : 1;
}
