/**
 * Batch runners: where the onnxruntime `run()` of a micro-batch executes.
 *
 * onnxruntime-node's `session.run()` is not asynchronous work: it defers by one `setImmediate`
 * and then runs the whole graph **synchronously on the calling thread** (node_modules/
 * onnxruntime-node/dist/backend.js). Inline, a 100-window batch of a 2.65 M-MAC model blocks the
 * event loop ≈ 5 ms, during which no frame is read, stored, acknowledged or turned into an alert.
 *
 * - `InlineRunner`: the model's own session on the main thread (fewest moving parts, least
 *   memory; fine for small models).
 * - `WorkerRunner`: a session of the **same verified bytes and options** in a worker_thread
 *   (the only one when the model was loaded with `deferSession`, as the runtime does in worker
 *   mode; the worker then checks the input and output names). The batch input and the outputs live in SharedArrayBuffers: the loop copies
 *   windows into the shared input (as it does inline), posts `{ n }`, the worker copies the
 *   batch into its private tensor buffer (onnxruntime-node rejects SharedArrayBuffer-backed
 *   tensors), runs, writes every output into the shared output and posts back. No tensor data
 *   crosses a message. The main thread stays free for ingest while the model runs.
 *
 * The worker is plain CommonJS evaluated from a string (`eval: true`) and loads onnxruntime-node
 * from the path the main thread resolved, so it behaves the same under tsx, vitest and the
 * compiled `dist/`.
 */
import { backoffMs } from "../core/timers.ts";
import { InferError } from "./errors.ts";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import * as ort from "./ort.ts";
import { sessionOptions, type LoadedModel } from "./registry.ts";

export type RunnerKind = "inline" | "worker";

export interface BatchRunner {
  readonly kind: RunnerKind;
  /** Where the loop writes the batch input: maxBatch × windowValues floats. */
  readonly input: Float32Array;
  /** Resolves when the runner can run (worker: session created and warmed up). */
  readonly ready: Promise<void>;
  /**
   * Runs the first `n` windows of `input`; returns, per manifest output (manifest order), the
   * `n × width` output values. The arrays are valid until the next call.
   */
  run(n: number): Promise<Float32Array[]>;
  /**
   * The last run's `session.run()` alone, µs, where the runner measures it apart from the
   * call's wall time (worker: inside the worker, without the message round trip), so a model's
   * cost per window compares across runners (lane.ts `windowCost`). Undefined: the call's wall time is it.
   */
  readonly lastRunUs?: number | undefined;
  close(): Promise<void>;
}

export class InlineRunner implements BatchRunner {
  readonly kind = "inline";
  readonly input: Float32Array;
  readonly ready = Promise.resolve();
  readonly #model: LoadedModel;
  readonly #tensors = new Map<number, ort.Tensor>();

  constructor(model: LoadedModel, maxBatch: number) {
    this.#model = model;
    this.input = new Float32Array(maxBatch * model.windowValues);
  }

  async run(n: number): Promise<Float32Array[]> {
    const m = this.#model;
    let t = this.#tensors.get(n);
    if (!t) {
      const { window } = m.manifest.inputs;
      t = new ort.Tensor("float32", this.input.subarray(0, n * m.windowValues), [
        n,
        window,
        m.normalizer.features,
      ]);
      this.#tensors.set(n, t);
    }
    if (!m.session)
      throw new InferError(
        "MODEL_RUN_FAILED",
        `${m.manifest.name}: no main-thread session (released, or deferred)`,
      );
    const results = await m.session.run({ [m.manifest.inputs.tensor]: t });
    return m.outputNames.map((name) => results[name]!.data as Float32Array);
  }

  async close(): Promise<void> {}
}

const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData: w } = require("node:worker_threads");
const ort = require(w.ort);
(async () => {
  const session = await ort.InferenceSession.create(w.bytes, w.options);
  // The same check as registry.ts missingNames (a deferred load made none on the main thread).
  if (!session.inputNames.includes(w.tensor))
    throw new Error(\`has no input "\${w.tensor}" (has \${session.inputNames.join(", ")})\`);
  for (const o of w.outputs)
    if (!session.outputNames.includes(o))
      throw new Error(\`has no output "\${o}" (has \${session.outputNames.join(", ")})\`);
  const shared = new Float32Array(w.input);
  // onnxruntime-node refuses tensors over a SharedArrayBuffer ("Invalid argument"): the batch is
  // copied into a private buffer first (n × window × features floats, a few µs per 100 windows).
  const input = new Float32Array(shared.length);
  const tensors = new Map();
  const tensor = (n) => {
    let t = tensors.get(n);
    if (!t) tensors.set(n, (t = new ort.Tensor("float32", input.subarray(0, n * w.windowValues), [n, w.window, w.features])));
    return t;
  };
  const run = async (n) => {
    input.set(shared.subarray(0, n * w.windowValues));
    const r = await session.run({ [w.tensor]: tensor(n) });
    return w.outputs.map((name) => r[name].data);
  };
  // Warm-up on one zero window: output widths (to size the shared output) and first-run costs.
  const widths = (await run(1)).map((d) => d.length);
  const output = new Float32Array(new SharedArrayBuffer(4 * w.maxBatch * widths.reduce((a, b) => a + b, 0)));
  parentPort.postMessage({ ready: true, widths, output: output.buffer });
  parentPort.on("message", async (m) => {
    try {
      const t0 = performance.now();
      const data = await run(m.n);
      const us = (performance.now() - t0) * 1000;
      let o = 0;
      for (const d of data) { output.set(d, o); o += d.length; }
      parentPort.postMessage({ id: m.id, ok: true, us });
    } catch (e) {
      parentPort.postMessage({ id: m.id, ok: false, error: String((e && e.stack) || e) });
    }
  });
})().catch((e) => parentPort.postMessage({ ready: false, error: String((e && e.message) || e) }));
`;

interface ReadyMsg {
  ready: boolean;
  widths?: number[];
  output?: SharedArrayBuffer;
  error?: string;
}
interface DoneMsg {
  id: number;
  ok: boolean;
  /** The run's time inside the worker, µs. */
  us?: number;
  error?: string;
}

/** First wait before a dead worker is started again, ms; doubles per death in a row, up to the max. */
const RESPAWN_BASE_MS = 1000;
const RESPAWN_MAX_MS = 30_000;

export class WorkerRunner implements BatchRunner {
  readonly kind = "worker";
  readonly input: Float32Array;
  readonly #model: LoadedModel;
  readonly #maxBatch: number;
  readonly #sab: SharedArrayBuffer;
  #worker!: Worker;
  #ready!: Promise<void>;
  #widths: number[] = [];
  #output: Float32Array | undefined;
  #pending: { id: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  #nextId = 1;
  #closed = false;
  /** Why the worker is gone (it exited or failed); run() rejects with it until the respawn is due. */
  #dead: InferError | undefined;
  #deathsInARow = 0;
  #respawnAtMs = 0;
  /** Workers started after the first (a worker that died, e.g. out of memory, is replaced). */
  respawns = 0;
  lastRunUs: number | undefined;

  constructor(model: LoadedModel, maxBatch: number) {
    this.#model = model;
    this.#maxBatch = maxBatch;
    this.#sab = new SharedArrayBuffer(4 * maxBatch * model.windowValues);
    this.input = new Float32Array(this.#sab);
    this.#spawn();
  }

  get ready(): Promise<void> {
    return this.#ready;
  }

  #spawn(): void {
    const model = this.#model;
    const { window, tensor } = model.manifest.inputs;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The worker's JS allocates a few small objects per run: a small young generation keeps
      // its V8 heap from growing to the main thread's default 16 MB semi-spaces.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 },
      workerData: {
        ort: createRequire(import.meta.url).resolve("onnxruntime-node"),
        bytes: model.bytes,
        options: sessionOptions(model.tuning),
        input: this.#sab,
        maxBatch: this.#maxBatch,
        windowValues: model.windowValues,
        window,
        features: model.normalizer.features,
        tensor,
        outputs: model.outputNames,
      },
    });
    worker.unref();
    this.#worker = worker;
    this.#dead = undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      // 'error' is followed by 'exit': the first one marks this worker dead.
      const died = (e: InferError): void => {
        reject(e);
        if (worker !== this.#worker || this.#dead || this.#closed) return;
        this.#dead = e;
        this.#pending?.reject(e);
        this.#pending = undefined;
        this.#respawnAtMs =
          performance.now() + backoffMs(RESPAWN_BASE_MS, this.#deathsInARow++, RESPAWN_MAX_MS);
      };
      worker.on("error", (cause) =>
        died(new InferError("MODEL_WORKER", `inference worker failed: ${cause.message}`, { cause })),
      );
      worker.on("exit", (code) =>
        died(new InferError("MODEL_WORKER", `inference worker exited (code ${code})`)),
      );
      worker.on("message", (m: ReadyMsg | DoneMsg) => {
        if ("ready" in m) {
          if (!m.ready || !m.widths || !m.output)
            return reject(
              new InferError(
                "MODEL_WORKER",
                `${model.onnxPath}: the inference worker could not load it: ${m.error ?? "?"}`,
              ),
            );
          this.#widths = m.widths;
          this.#output = new Float32Array(m.output);
          return resolve();
        }
        const p = this.#pending;
        if (!p || p.id !== m.id) return;
        this.#pending = undefined;
        this.lastRunUs = m.us;
        if (m.ok) p.resolve();
        else p.reject(new InferError("MODEL_RUN_FAILED", m.error ?? "inference worker run failed"));
      });
    });
    // The loop awaits `ready` before its first run; an unobserved failure must not crash the process.
    this.#ready.catch(() => undefined);
  }

  /**
   * Runs a batch in the worker. A worker that died (out of memory, a native crash) fails the runs
   * until its replacement is due, 1 s after the death, doubling per death in a row up to 30 s;
   * the next run then starts a new worker from the same verified bytes.
   */
  async run(n: number): Promise<Float32Array[]> {
    if (this.#closed) throw new InferError("MODEL_WORKER", "inference worker closed");
    if (this.#dead) {
      if (performance.now() < this.#respawnAtMs) throw this.#dead;
      this.respawns++;
      this.#spawn();
    }
    await this.#ready;
    if (this.#pending) throw new InferError("MODEL_WORKER", "inference worker busy (one batch at a time)");
    const id = this.#nextId++;
    const done = new Promise<void>((resolve, reject) => (this.#pending = { id, resolve, reject }));
    this.#worker.postMessage({ id, n });
    await done;
    this.#deathsInARow = 0;
    const out: Float32Array[] = [];
    let o = 0;
    for (const w of this.#widths) {
      out.push(this.#output!.subarray(o, o + n * w));
      o += n * w;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#worker.terminate();
  }
}

export function createRunner(kind: RunnerKind, model: LoadedModel, maxBatch: number): BatchRunner {
  return kind === "worker" ? new WorkerRunner(model, maxBatch) : new InlineRunner(model, maxBatch);
}
