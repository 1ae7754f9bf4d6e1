/**
 * `npm run bench -- update [--runs N] [--frames N] [--shadow N] [--skip-firmware]`: the update path's figures.
 *
 * 1. Approval to swap: a local anvil (registry, threshold 2 of 3 approvers); per run a live FD001
 *    float model and a published int8 release with one approval. The clock starts when the second
 *    approval's transaction is mined and stops when the candidate is live: the agent's check is
 *    called at once (as a registry event would; the cron schedule adds up to its period), then
 *    fetch (file://), hash, manifest/ONNX check, load, `--shadow` windows in shadow (frames fed as
 *    fast as the loop takes them), promote, and the signed report is mined.
 * 2. Shadow cost: the inference loop's tick wall time (every lane) per live window over `--frames`
 *    frames of 32 devices, with no shadow (the baseline, same run), with the same model in shadow
 *    and with the int8 model in shadow; ratio = with / without.
 * 3. Firmware: runs `bench/firmware.ts --quick` and reuses its figures (throughput over a paced
 *    pty at 115 200 and 921 600 baud as a fraction of the line rate; the C bootloader's RAM).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { loadModel, type LoadedModel } from "../gateway/src/infer/registry.ts";
import {
  chainInstallReporter,
  chainReleaseSource,
  MemoryUpdateState,
  ModelUpdateAgent,
} from "../gateway/src/updates/model-agent.ts";
import { GATEWAY_ID, LoopRig, chainRig, liveModel, propose, releaseFolder } from "../test/updates/rig.ts";
import { benchOptions, int } from "./lib/options.ts";

const args = benchOptions(
  import.meta.url,
  {
    runs: { type: "string" },
    frames: { type: "string" },
    shadow: { type: "string" },
    "skip-firmware": { type: "boolean" },
  },
  (a) => ({
    runs: int("runs", a.runs, 3, 1),
    frames: int("frames", a.frames, 300, 1),
    shadow: int("shadow", a.shadow, 100, 1),
    "skip-firmware": a["skip-firmware"] === true,
  }),
);
const RUNS = args.runs;
const FRAMES = args.frames;
const SHADOW = args.shadow;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- 1. approval to swap ----------------------------------------------------------------
const rig = await chainRig();
const swaps: number[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const profile = `bench-${i}`;
    const live = await liveModel(profile);
    const loop = new LoopRig(live, profile);
    for (let f = 0; f < 5; f++) await loop.feed();
    const agent = new ModelUpdateAgent({
      loop: loop.loop,
      releases: chainReleaseSource(rig.gateway, GATEWAY_ID),
      reporter: chainInstallReporter(rig.gateway, GATEWAY_ID, rig.sign),
      state: new MemoryUpdateState(),
      dir: join(rig.dataDir, `updates-${i}`),
      shadowWindows: SHADOW,
      maxCostFactor: 1000,
      evalMs: 2,
    });
    const id = await propose(rig, { profile, ...releaseFolder({ profile, version: "3.1.0" }) });
    await rig.approvers[0]!.approveRelease(id);
    const t0 = performance.now();
    await rig.approvers[1]!.approveRelease(id);
    await loop.feedUntil(agent.check());
    const ms = performance.now() - t0;
    if (agent.counters.installs !== 1)
      throw new Error(`run ${i}: not installed: ${JSON.stringify(agent.status())}`);
    swaps.push(ms);
    await agent.stop();
    await loop.close();
  }
} finally {
  await rig.close();
}

// ---- 2. shadow cost ---------------------------------------------------------------------
const DEVICES = Array.from({ length: 32 }, (_, i) => 100 + i);
async function perWindowUs(shadow: "none" | "same" | "int8"): Promise<number> {
  const profile = "bench-cost";
  const live = await liveModel(profile);
  const r = new LoopRig(live, profile, DEVICES);
  let cand: LoadedModel | undefined;
  if (shadow !== "none") {
    const f = releaseFolder({ profile, version: "3.1.0", precision: shadow === "same" ? "float32" : "int8" });
    cand = await loadModel(f.manifest);
    await r.loop.addShadow(cand, live);
  }
  for (let i = 0; i < 20; i++) await r.feed(); // warm-up
  const w0 = r.loop.counters.windowsRun;
  let us = 0;
  for (let i = 0; i < FRAMES; i++) {
    await r.feed(false);
    const t0 = performance.now();
    await r.loop.tick();
    us += (performance.now() - t0) * 1000;
  }
  const windows = r.loop.counters.windowsRun - w0;
  await r.close();
  return us / windows;
}
const base = await perWindowUs("none");
const same = await perWindowUs("same");
const int8 = await perWindowUs("int8");

// ---- 3. firmware (reused) ---------------------------------------------------------------
let fw: Record<string, unknown> | undefined;
if (!args["skip-firmware"]) {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const out = execFileSync(process.execPath, ["--import", "tsx", join(here, "firmware.ts"), "--quick"], {
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  fw = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

// ---- report -----------------------------------------------------------------------------
console.log(`Update path (median of ${RUNS} runs; shadow ${SHADOW} windows, 3 devices)\n`);
console.log(
  `  approval → swap (2nd approval mined → candidate live, check called at once): ${median(swaps).toFixed(0)} ms`,
);
console.log(`    runs: ${swaps.map((x) => x.toFixed(0)).join(", ")} ms`);
console.log(
  `\nInference loop cost per live window, 32 devices, ${FRAMES} frames each (tick wall time: all lanes)\n`,
);
console.log(`  no shadow (baseline)      ${base.toFixed(1)} µs   1.00×`);
console.log(`  float model in shadow     ${same.toFixed(1)} µs   ${(same / base).toFixed(2)}×`);
console.log(`  int8 model in shadow      ${int8.toFixed(1)} µs   ${(int8 / base).toFixed(2)}×`);
if (fw) {
  console.log(`\nFirmware (bench/firmware.ts --quick, reused)\n`);
  console.log(
    `  fraction of line rate: 115200 baud ${fw["fraction115200"]}, 921600 baud ${fw["fraction921600"]} (goal ${fw["goal"]})`,
  );
  const ram = (fw["ram"] as Array<{ target: string; bootloaderBytes: number }>) ?? [];
  for (const r of ram) console.log(`  C bootloader RAM (${r.target}): ${r.bootloaderBytes} B`);
}
console.log(
  JSON.stringify({
    bench: "update",
    runs: RUNS,
    shadowWindows: SHADOW,
    approvalToSwapMs: Number(median(swaps).toFixed(1)),
    approvalToSwapRunsMs: swaps.map((x) => Number(x.toFixed(1))),
    loopUsPerWindow: {
      none: Number(base.toFixed(2)),
      shadowSame: Number(same.toFixed(2)),
      shadowInt8: Number(int8.toFixed(2)),
    },
    shadowCostRatio: { same: Number((same / base).toFixed(3)), int8: Number((int8 / base).toFixed(3)) },
    firmware: fw
      ? {
          fraction115200: fw["fraction115200"],
          fraction921600: fw["fraction921600"],
          goal: fw["goal"],
          bootloaderRamBytes: (fw["ram"] as Array<{ target: string; bootloaderBytes: number }>).map((r) => ({
            target: r.target,
            bytes: r.bootloaderBytes,
          })),
        }
      : null,
  }),
);
