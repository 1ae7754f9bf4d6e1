// Run-to-failure trajectories of the simulator's rotating machine (device-sim/src/profiles/rotating.ts),
// seeded exactly as the simulator seeds them, for training (models/rotating/train.py) and for the held-out
// evaluation (models/eval/rotating.ts regenerates its seeds in memory, nothing is read from disk).
//
//   npx tsx models/rotating/generate.ts            # writes models/rotating/data/train.{bin,index.txt}
//   npx tsx models/rotating/generate.ts --split eval   # the held-out set (diagnostics only; --split all: both)
//
// Seeding (device-sim/src/simulator.ts): `rng = new Rng(seed)`, machine i is
// `new RotatingMachine(rng.fork(`machine-${i}`), { meanLife })`, and its sensor faults come from
// `new SensorFaults(rng.fork(`device-${i}`).fork("sensor"), rates, counters)` (device-sim/src/device.ts).
// Machines 0..degrading-1 of a seed run to failure; the next `healthy` machines use the same labels with
// `degrade: false` (never fail) and are the negatives of the evaluation.
//
// Polling: the simulator draws each step's sample exactly once (SimDevice caches it), so a machine's
// state advances once per frame whatever the timing. POLL_CHOICES is kept as a knob for experiments;
// with its single value 1 the generator's frames equal the simulator's, as the test checks.
import { writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { FaultCounters, SensorFaults, type FaultRates } from "../../device-sim/src/faults.ts";
import {
  RotatingMachine,
  ROTATING_CHANNELS,
  ROTATING_PROFILE,
} from "../../device-sim/src/profiles/rotating.ts";
import { Rng } from "../../device-sim/src/rng.ts";

export const CHANNELS: readonly string[] = ROTATING_CHANNELS.map((c) => c.name);
export const PROFILE = ROTATING_PROFILE;
export const POLL_CHOICES: readonly number[] = [1];

export interface SplitSpec {
  /** simulator seeds */
  seeds: number[];
  /** machines 0..degrading-1 of each seed run to failure */
  degrading: number;
  /** machines degrading..degrading+healthy-1 of each seed never fail (degrade: false) */
  healthy: number;
  /** frames generated for a healthy machine */
  healthyFrames: number;
  meanLife: number;
  /** value-fault rates per frame (stuck, drift, spike; never nan: the gateway rejects those frames) */
  faults: FaultRates;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** The dataset definition; the manifest's training/metrics sections record the same values. */
export const SPLITS = {
  train: {
    seeds: range(101, 164),
    degrading: 8,
    healthy: 2,
    healthyFrames: 1200,
    meanLife: 600,
    faults: { stuck: 0.002, drift: 0.002, spike: 0.005 },
  },
  eval: {
    seeds: range(1, 100),
    degrading: 8,
    healthy: 2,
    healthyFrames: 1200,
    meanLife: 600,
    faults: { stuck: 0.001, drift: 0.001, spike: 0.002 },
  },
} as const satisfies Record<string, SplitSpec>;

export type SplitName = keyof typeof SPLITS;

export interface Trajectory {
  seed: number;
  /** machine index within the seed (fork label `machine-${index}`) */
  index: number;
  degrade: boolean;
  /** ground truth: first frame index that does not exist (the machine failed); undefined if healthy */
  failureStep: number | undefined;
  frames: number;
  /** sample() calls per frame */
  polls: number;
  /** frames x 6 channels, row-major, float32 as a device would send them (faults applied) */
  values: Float32Array;
  /** ground-truth degradation 0..1 per frame (0 = healthy stretch) */
  degradation: Float32Array;
  /** 1 where a sensor fault altered the frame */
  faulted: Uint8Array;
}

export function generateMachine(
  seed: number,
  index: number,
  degrade: boolean,
  opts: { meanLife: number; healthyFrames: number; faults: FaultRates },
): Trajectory {
  const rng = new Rng(seed);
  const machine = new RotatingMachine(rng.fork(`machine-${index}`), {
    meanLife: opts.meanLife,
    ...(degrade ? {} : { degrade: false }),
  });
  const sensor = new SensorFaults(
    rng.fork(`device-${index}`).fork("sensor"),
    opts.faults,
    new FaultCounters(),
  );
  const polls = POLL_CHOICES[rng.fork(`polls-${index}`).int(0, POLL_CHOICES.length - 1)] ?? 1;
  const frames = machine.failureStep ?? opts.healthyFrames;
  const C = CHANNELS.length;
  const values = new Float32Array(frames * C);
  const degradation = new Float32Array(frames);
  const faulted = new Uint8Array(frames);
  const clean = new Float32Array(C);
  for (let t = 0; t < frames; t++) {
    let s: Float32Array | undefined;
    for (let k = 0; k < polls; k++) s = machine.sample(t);
    if (!s) throw new Error(`seed ${seed} machine ${index}: no sample at step ${t} < ${frames}`);
    clean.set(s);
    if (sensor.apply(s)) throw new Error("nan faults are not generated");
    for (let c = 0; c < C; c++) if (s[c] !== clean[c]) faulted[t] = 1;
    values.set(s, t * C);
    degradation[t] = machine.degradation(t);
  }
  return {
    seed,
    index,
    degrade,
    failureStep: machine.failureStep,
    frames,
    polls,
    values,
    degradation,
    faulted,
  };
}

export function generateSplit(spec: SplitSpec): Trajectory[] {
  const out: Trajectory[] = [];
  for (const seed of spec.seeds) {
    for (let i = 0; i < spec.degrading + spec.healthy; i++)
      out.push(generateMachine(seed, i, i < spec.degrading, spec));
  }
  return out;
}

/**
 * Serialises a split: `bin` is float32 little-endian rows of [6 channels, degradation, faulted], all
 * machines concatenated; `index` is a text table, one machine per line, giving each machine's rows.
 */
export function encodeSplit(trajs: readonly Trajectory[]): { bin: Buffer; index: string } {
  const C = CHANNELS.length;
  const W = C + 2;
  const rows = trajs.reduce((s, t) => s + t.frames, 0);
  const f = new Float32Array(rows * W);
  const lines = ["seed machine degrade failure_step first_row frames polls"];
  let r = 0;
  for (const t of trajs) {
    lines.push(
      `${t.seed} ${t.index} ${t.degrade ? 1 : 0} ${t.failureStep ?? -1} ${r} ${t.frames} ${t.polls}`,
    );
    for (let i = 0; i < t.frames; i++, r++) {
      f.set(t.values.subarray(i * C, (i + 1) * C), r * W);
      f[r * W + C] = t.degradation[i]!;
      f[r * W + C + 1] = t.faulted[i]!;
    }
  }
  const bin = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new Error("big-endian host");
  return { bin, index: lines.join("\n") + "\n" };
}

export const DATA_DIR = resolve(dirname(new URL(import.meta.url).pathname), "data");

/** Writes data/<split>.bin and data/<split>.index.txt; returns their sha256. */
export function writeSplit(split: SplitName, dir = DATA_DIR): { bin: string; index: string; rows: number } {
  const { bin, index } = encodeSplit(generateSplit(SPLITS[split]));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${split}.bin`), bin);
  writeFileSync(join(dir, `${split}.index.txt`), index);
  writeFileSync(
    join(dir, `${split}.spec.txt`),
    JSON.stringify({ channels: CHANNELS, ...SPLITS[split] }) + "\n",
  );
  const h = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");
  return { bin: h(bin), index: h(index), rows: bin.length / 4 / (CHANNELS.length + 2) };
}

function main(): void {
  const args = process.argv.slice(2);
  const i = args.indexOf("--split");
  const which = i >= 0 ? args[i + 1] : "train";
  if (which === undefined || !["train", "eval", "all"].includes(which))
    throw new Error(`--split train|eval|all, got ${String(which)}`);
  const splits: SplitName[] = which === "all" ? ["train", "eval"] : [which as SplitName];
  for (const s of splits) {
    const t0 = performance.now();
    const r = writeSplit(s);
    console.log(
      `${s}: ${r.rows} frames, ${SPLITS[s].seeds.length} seeds, ${(performance.now() - t0).toFixed(0)} ms, ` +
        `sha256 bin ${r.bin} index ${r.index}`,
    );
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
