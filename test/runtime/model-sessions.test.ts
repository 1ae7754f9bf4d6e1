/**
 * Where the models' onnxruntime sessions live: with `models.runner: "worker"` the runtime loads
 * the models without a main-thread session (each worker holds the only one), with "inline" the
 * main thread holds them. Removing `deferSession` from the runtime's wiring fails the first case.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";

async function sessions(runner: "inline" | "worker"): Promise<Array<boolean>> {
  const rt = new Runtime({
    config: resolveConfig({
      http: { port: 0 }, // never the default 9479: another gateway may hold it
      mqtt: { embedded: { enabled: true, host: "127.0.0.1", port: 0 } },
      models: { runner },
      attest: { enabled: false },
      log: { statsIntervalMs: 0 },
    }),
    store: new MemoryFrameStore(),
    clock: new FakeClock(),
  });
  await rt.start();
  try {
    return rt.loop!.models.map((m) => m.session !== undefined);
  } finally {
    await rt.stop();
  }
}

describe("Runtime: model sessions by runner", () => {
  it("behavior: worker mode loads every model without a main-thread session; inline mode keeps one per model", async () => {
    const worker = await sessions("worker");
    expect(worker.length).toBeGreaterThanOrEqual(6);
    expect(worker.every((s) => !s)).toBe(true);
    const inline = await sessions("inline");
    expect(inline.length).toBe(worker.length);
    expect(inline.every((s) => s)).toBe(true);
  });
});
