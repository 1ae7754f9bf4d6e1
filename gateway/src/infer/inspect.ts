/**
 * An ONNX file's inputs and outputs (names, tensor shapes), read by onnxruntime in a worker
 * thread: creating a session runs synchronously on the calling thread (worker.ts), and for some
 * valid models takes seconds even with graph optimisation off (an update audit's 13 MB model:
 * 7–9 s), during which the gateway's main thread would read, store and acknowledge nothing.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { InferError } from "./errors.ts";

/** One input or output as onnxruntime describes it (a non-tensor value has no shape). */
export interface ValueInfo {
  name: string;
  isTensor: boolean;
  shape: (number | string)[];
}

export interface ModelInterface {
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

const INSPECT_SOURCE = `
"use strict";
const { parentPort, workerData: w } = require("node:worker_threads");
const ort = require(w.ort);
const info = (m) => ({ name: m.name, isTensor: Boolean(m.isTensor), shape: m.isTensor ? [...m.shape] : [] });
ort.InferenceSession.create(w.bytes, { graphOptimizationLevel: "disabled" })
  .then(async (s) => {
    const r = { inputs: s.inputMetadata.map(info), outputs: s.outputMetadata.map(info) };
    await s.release();
    parentPort.postMessage({ ok: true, r });
  })
  .catch((e) => parentPort.postMessage({ ok: false, error: String((e && e.message) || e) }));
`;

/**
 * Reads `onnx`'s interface in a worker (a session with graph optimisation off, released at once).
 * @throws InferError MODEL_LOAD_FAILED when onnxruntime cannot load the bytes (its words in
 *   `details`), MODEL_WORKER when the worker died; `signal`'s reason when aborted (the worker is
 *   terminated).
 */
export async function inspectModel(onnx: Uint8Array, signal?: AbortSignal): Promise<ModelInterface> {
  signal?.throwIfAborted();
  const worker = new Worker(INSPECT_SOURCE, {
    eval: true,
    workerData: { ort: createRequire(import.meta.url).resolve("onnxruntime-node"), bytes: onnx },
  });
  let abort: (() => void) | undefined;
  try {
    return await new Promise<ModelInterface>((resolve, reject) => {
      abort = (): void => reject(signal!.reason);
      signal?.addEventListener("abort", abort, { once: true });
      worker.on("message", (m: { ok: boolean; r?: ModelInterface; error?: string }) =>
        m.ok && m.r
          ? resolve(m.r)
          : reject(
              new InferError("MODEL_LOAD_FAILED", "onnxruntime cannot load the model file", {
                details: m.error ?? "?",
              }),
            ),
      );
      worker.on("error", (cause) =>
        reject(new InferError("MODEL_WORKER", `model inspection failed: ${cause.message}`, { cause })),
      );
      worker.on("exit", (code) =>
        reject(new InferError("MODEL_WORKER", `model inspection worker exited (code ${code})`)),
      );
    });
  } finally {
    if (abort) signal?.removeEventListener("abort", abort);
    // Not awaited: a worker inside onnxruntime's native code ends only when that returns, and an
    // abort (a gateway stop) must not wait for it. Its exit code is of no interest here.
    void worker.terminate().catch(() => undefined);
  }
}
