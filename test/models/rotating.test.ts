// Committed rotating-machine health model (rotating-v1): file hash, manifest schema, training data that
// regenerates bit for bit from its seeds, the generator seeding the machines exactly as the simulator does,
// and held-out metrics recomputed with onnxruntime-node that must not be worse than the manifest claims.
// Plus unit tests of the streaming window, the hysteresis rule and the scoring definitions.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { SimDevice } from "../../device-sim/src/device.ts";
import { FaultCounters } from "../../device-sim/src/faults.ts";
import { RotatingMachine } from "../../device-sim/src/profiles/rotating.ts";
import { Rng } from "../../device-sim/src/rng.ts";
import { buildSources } from "../../device-sim/src/simulator.ts";
import { REPO_ROOT, sha256Hex } from "../../models/eval/cmapss.ts";
import { createNormalizer } from "../../gateway/src/infer/features/normalize.ts";
import {
  loadManifest,
  modelPath,
  type ManifestAlert,
  type ModelManifest,
} from "../../gateway/src/infer/features/manifest.ts";
import {
  WindowRing,
  evaluateRotating,
  nextAlertState,
  scoreOutputs,
  scoreRule,
  worseThanClaimed,
  type RotatingEvaluation,
} from "../../models/eval/rotating.ts";
import {
  CHANNELS,
  SPLITS,
  encodeSplit,
  generateMachine,
  generateSplit,
  type Trajectory,
} from "../../models/rotating/generate.ts";

const MANIFEST = join(REPO_ROOT, "models", "rotating", "rotating-v1.manifest.json");
const schema = JSON.parse(readFileSync(join(REPO_ROOT, "models", "manifest.schema.json"), "utf8")) as object;
const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
const m: ModelManifest = loadManifest(MANIFEST);

describe("committed rotating-v1 health model", () => {
  it("manifest validates against models/manifest.schema.json", () => {
    const ok = validate(m);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it("manifest is consistent with the ONNX file, the profile and its channel layout", () => {
    const onnx = readFileSync(modelPath(MANIFEST, m));
    expect(sha256Hex(onnx)).toBe(m.model.sha256);
    expect(onnx.length).toBe(m.model.bytes);
    expect(m.task).toBe("failure-horizon");
    expect(m.devices.profiles).toEqual(["rotating-v1"]);
    expect(m.inputs.channels).toEqual(CHANNELS);
    expect(m.inputs.shape).toEqual(["batch", m.inputs.window, m.inputs.features.length]);
    expect(createNormalizer(m).features).toBe(m.inputs.features.length);
    expect(m.alerts.length).toBeGreaterThan(0);
    for (const a of m.alerts) {
      expect(a.output).toBe(m.outputs[0]!.name);
      expect(a.op === ">=" ? a.clear < a.threshold : a.clear > a.threshold).toBe(true);
    }
  });

  it("training data regenerates bit for bit from its seeds, disjoint from the evaluation seeds", () => {
    const { bin, index } = encodeSplit(generateSplit(SPLITS.train));
    const byFile = Object.fromEntries(m.training.data.map((d) => [d.file.split("/").pop(), d.sha256]));
    expect(sha256Hex(bin)).toBe(byFile["train.bin"]);
    expect(sha256Hex(Buffer.from(index))).toBe(byFile["train.index.txt"]);
    const evalSeeds = new Set<number>(SPLITS.eval.seeds);
    expect(SPLITS.train.seeds.filter((s) => evalSeeds.has(s))).toEqual([]);
  });

  describe("held-out metrics (onnxruntime-node, streamed as the gateway does)", () => {
    let ev: RotatingEvaluation;
    beforeAll(async () => {
      ev = await evaluateRotating(MANIFEST, m);
      // ~8 s alone; a full `npm test` beside other work on two cores once took over 60 s.
    }, 180_000);

    it("are not worse than the manifest claims", () => {
      expect(worseThanClaimed(ev, m)).toEqual([]);
      // the claims are the model's own numbers, not loose bounds
      expect(ev.headline.precision).toBeCloseTo(m.metrics["precision"] as number, 5);
      expect(ev.headline.recall).toBeCloseTo(m.metrics["recall"] as number, 5);
      expect(ev.headline.medianLeadFrames).toBe(m.metrics["medianLeadFrames"]);
      expect(ev.rootBrier).toBeGreaterThanOrEqual(m.metrics.rmse * (1 - 1e-3));
    });

    it("holds under float noise (outputs moved by ±1e-5), so another CPU's onnxruntime agrees", () => {
      for (const delta of [-1e-5, 1e-5]) {
        const moved = ev.outputs.map((o) => o.map((v) => v + delta));
        const s = scoreOutputs(m, ev.trajectories, moved);
        expect(s.headline.precision).toBe(ev.headline.precision);
        expect(s.headline.recall).toBe(ev.headline.recall);
        expect(s.headline.medianLeadFrames).toBe(ev.headline.medianLeadFrames);
        expect(s.headline.falseAlarms).toBe(ev.headline.falseAlarms);
      }
    });

    it("covers degrading and never-failing machines, and outputs probabilities", () => {
      const spec = SPLITS.eval;
      expect(ev.units).toBe(spec.seeds.length * (spec.degrading + spec.healthy));
      expect(ev.headline.healthyMachines).toBe(spec.seeds.length * spec.healthy);
      for (const d of ev.headline.devices) {
        if (!d.degrade) expect(d.detectedAt).toBeUndefined();
        if (d.lead !== undefined) expect(d.lead).toBeGreaterThan(0);
      }
      let bad = 0;
      for (const out of ev.outputs) {
        for (let t = 0; t < out.length; t++) {
          const v = out[t]!;
          if (t < m.inputs.window - 1 ? !Number.isNaN(v) : !(v >= 0 && v <= 1)) bad++;
        }
      }
      expect(bad).toBe(0);
    });
  });
});

describe("rotating dataset generator", () => {
  it("seeds machines and sensor faults exactly as the simulator does (incl. its extra sample() polls)", () => {
    const seed = 3;
    const spec = { meanLife: 600, healthyFrames: 300, faults: { stuck: 0.01, drift: 0.01, spike: 0.02 } };
    const sources = buildSources({ devices: 4, meanLife: 600 }, new Rng(seed));
    for (let i = 0; i < 4; i++) {
      const gen = generateMachine(seed, i, true, spec);
      const src = sources[i] as RotatingMachine;
      expect(gen.failureStep).toBe(src.failureStep);
      const dev = new SimDevice({
        id: 1 + i,
        source: src,
        rng: new Rng(seed).fork(`device-${i}`),
        faults: spec.faults,
        counters: new FaultCounters(),
      });
      for (let t = 0; t < gen.frames; t++) {
        for (let k = 1; k < gen.polls; k++) expect(dev.finished).toBe(false); // each check samples once
        const p = dev.nextData(0)!;
        const f = decodeFrame(p.raw);
        if (f.type !== FrameType.Data) throw new Error("not a DATA frame");
        expect(Array.from(f.values)).toEqual(Array.from(gen.values.subarray(t * 6, t * 6 + 6)));
      }
      expect(dev.finished).toBe(true);
    }
  });

  it("healthy machines never degrade; degrading ones end at failureStep with degradation reaching 1", () => {
    const h = generateMachine(5, 9, false, { meanLife: 600, healthyFrames: 500, faults: {} });
    expect(h.failureStep).toBeUndefined();
    expect(h.frames).toBe(500);
    expect(h.degradation.every((d) => d === 0)).toBe(true);
    const d = generateMachine(5, 0, true, { meanLife: 600, healthyFrames: 500, faults: {} });
    expect(d.frames).toBe(d.failureStep);
    expect(d.degradation[0]).toBe(0);
    expect(d.degradation[d.frames - 1]).toBeGreaterThan(0.9);
    expect(d.faulted.every((x) => x === 0)).toBe(true);
  });
});

describe("streaming window, hysteresis and scoring", () => {
  const tiny = {
    ...m,
    inputs: { ...m.inputs, channels: ["a", "b"], features: ["a", "b"], window: 3, shape: ["batch", 3, 2] },
    normalization: {
      method: "regime-zscore",
      regime: { channels: ["a"], centroids: [[0]] },
      mean: [[0, 0]],
      std: [[1, 1]],
    },
  } as ModelManifest;

  it("keeps the last W normalised rows oldest first, waiting for a full window or repeating the first", () => {
    const norm = createNormalizer(tiny);
    const none = new WindowRing(norm, 3, "none");
    const rep = new WindowRing(norm, 3, "repeat-first");
    const out = new Float32Array(6);
    for (let t = 0; t < 7; t++) {
      const frame = [t, 10 * t];
      none.push(norm, frame, 0);
      rep.push(norm, frame, 0);
      expect(none.ready).toBe(t >= 2);
      expect(rep.ready).toBe(true);
      rep.fill(out, 0);
      const want = [t - 2, t - 1, t].flatMap((s) => [Math.max(s, 0), 10 * Math.max(s, 0)]);
      expect(Array.from(out)).toEqual(want);
      if (none.ready) {
        none.fill(out, 0);
        expect(Array.from(out)).toEqual(want);
      }
    }
  });

  it("raises at the threshold and clears only strictly past the clear level", () => {
    const up: ManifestAlert = {
      id: "p",
      output: "p",
      severity: "warning",
      op: ">=",
      threshold: 0.5,
      clear: 0.3,
    };
    const seq = [0.2, 0.5, 0.31, 0.3, 0.29, 0.49, 0.6];
    let a = false;
    expect(seq.map((v) => (a = nextAlertState(up, a, v)))).toEqual([
      false,
      true,
      true,
      true,
      false,
      false,
      true,
    ]);
    const down: ManifestAlert = { ...up, op: "<=", threshold: 50, clear: 60 };
    a = false;
    expect([70, 50, 60, 61, 55].map((v) => (a = nextAlertState(down, a, v)))).toEqual([
      false,
      true,
      true,
      false,
      false,
    ]);
  });

  it("counts false alarms on healthy frames, detection after onset, lead to failure", () => {
    const rule: ManifestAlert = {
      id: "p",
      output: "p",
      severity: "warning",
      op: ">=",
      threshold: 0.5,
      clear: 0.3,
    };
    const traj = (degr: number[], failureStep: number | undefined): Trajectory => ({
      seed: 1,
      index: 0,
      degrade: failureStep !== undefined,
      failureStep,
      frames: degr.length,
      polls: 1,
      values: new Float32Array(degr.length * 6),
      degradation: Float32Array.from(degr),
      faulted: new Uint8Array(degr.length),
    });
    const N = NaN;
    const trajs = [
      // false alarm at t=2 (healthy), cleared, detected at t=6, fails at 8: lead 2
      traj([0, 0, 0, 0, 0, 0.1, 0.2, 0.5], 8),
      // never alerts: false negative
      traj([0, 0, 0.1, 0.5], 4),
      // alert raised while healthy stays on into the degraded phase: 1 false alarm, detected at t=3
      traj([0, 0, 0, 0.1, 0.2], 5),
      // healthy machine, two raises
      traj([0, 0, 0, 0, 0, 0], undefined),
    ];
    const outputs = [
      [N, N, 0.6, 0.2, 0.1, 0.4, 0.7, 0.9],
      [N, 0.1, 0.2, 0.4],
      [N, 0.1, 0.8, 0.6, 0.9],
      [N, 0.5, 0.2, 0.9, 0.35, 0.2],
    ].map((o) => Float32Array.from(o));
    const r = scoreRule(rule, trajs, outputs);
    expect(r.devices.map((d) => [d.healthyFrames, d.falseAlarms, d.detectedAt, d.lead])).toEqual([
      [3, 1, 6, 2],
      [1, 0, undefined, undefined],
      [2, 1, 3, 2],
      [5, 2, undefined, undefined],
    ]);
    expect(r.truePositives).toBe(2);
    expect(r.falseNegatives).toBe(1);
    expect(r.falseAlarms).toBe(4);
    expect(r.precision).toBeCloseTo(2 / 6, 12);
    expect(r.recall).toBeCloseTo(2 / 3, 12);
    expect(r.medianLeadFrames).toBe(2);
    // healthy scored frames: 3 + 1 + 2 + 5
    expect(r.healthyFrames).toBe(11);
    expect(r.falseAlarmsPer1000HealthyFrames).toBeCloseTo(4000 / 11, 9);
  });
});
