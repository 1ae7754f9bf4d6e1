// The endpoint on a real gateway: Runtime with a LevelDB store, the embedded broker, the
// rotating-machine model, devices simulated over MQTT; /metrics, /readyz and the structured log
// read the way an operator would.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { createLogger } from "../../gateway/src/core/log.ts";
import { readiness } from "../../gateway/src/http/readiness.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { parseExposition, sample } from "./exposition.ts";

const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  },
});
let free = 1 << 30;
let rt: Runtime;
let acked = 0;

async function metrics() {
  return parseExposition(await (await fetch(`${rt.http!.url}/metrics`)).text());
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-http-rt-"));
  const log = createLogger("debug", { destination: sink });
  rt = new Runtime({
    config: resolveConfig({
      dataDir: dir,
      site: "http-site",
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      attest: { enabled: false, gatewayName: "gw-http" },
      models: { dir: "models/rotating" },
      log: { statsIntervalMs: 200 },
    }),
    log,
    store: new LevelFrameStore({
      dir: join(dir, "store"),
      minFreeBytes: 1 << 20,
      reserveBytes: 0,
      spaceCheckIntervalMs: 20,
      freeBytes: () => Promise.resolve(free),
      logger: log.child({ component: "store" }),
    }),
  });
  expect(rt.phase()).toBe("created");
  expect(readiness(rt).failing.map((f) => `${f.check} ${f.reason}`)).toEqual([
    "phase created",
    "store closed",
  ]);
  await rt.start();
  expect(rt.phase()).toBe("running");
  const url = rt.embedded!.url;
  const sim = new Simulator({
    transport: new MqttTransport({ url, clientId: "sim-http" }),
    devices: 3,
    rate: 100,
    durationS: 1.5,
    meanLife: 100,
    seed: 11,
    faults: { corrupt: 0.02 },
  });
  acked = (await sim.run()).acked;
  // A device reports a sensor fault twice.
  const c = await mqtt.connectAsync(url, { clientId: "dev-err", protocolVersion: 4 });
  const err = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "vib sensor stuck" });
  await c.publishAsync("vigil/v1/ingest/00000001", err, { qos: 1 });
  await c.publishAsync("vigil/v1/ingest/00000001", err, { qos: 1 });
  await c.endAsync();
}, 60_000);

afterAll(async () => {
  await rt?.stop();
});

describe("endpoint on a running gateway", () => {
  it("behavior: /metrics reports what the stages counted, with ERROR frames by device and code", async () => {
    const m = await metrics();
    const c = rt.ingest.counters;
    expect(sample(m, "vigil_ingest_frames_accepted_total")).toBe(c.accepted);
    expect(c.accepted).toBe(acked); // every acknowledged frame, counted once
    expect(rt.loop!.counters.windowsRun).toBeGreaterThan(0);
    expect(sample(m, "vigil_ingest_frames_rejected_total", { reason: "BAD_CRC" })).toBe(c.rejected.BAD_CRC);
    expect(sample(m, "vigil_device_error_frames_total", { device: "00000001", code: "sensor_fault" })).toBe(
      2,
    );
    expect(sample(m, "vigil_inference_windows_run_total")).toBe(rt.loop!.counters.windowsRun);
    expect(sample(m, "vigil_inference_run_duration_seconds_count")).toBe(rt.loop!.counters.runLatency.count);
    expect(
      sample(m, "vigil_model_info", { model: "rotating-v1-health", role: "live", profiles: "rotating-v1" }),
    ).toBe(1);
    expect(sample(m, "vigil_device_info", { device: "00000002", profile: "rotating-v1" })).toBe(1);
    const raised = m.get("vigil_alerts_total")!.samples.filter((s) => s.labels.state === "raised");
    expect(raised.reduce((a, s) => a + s.value, 0)).toBe(rt.alerts.counters.raised);
    expect(sample(m, "vigil_store_state", { state: "ok" })).toBe(1);
    expect(sample(m, "vigil_disk_free_bytes")).toBeGreaterThan(0);
    expect(sample(m, "vigil_ready")).toBe(1);
    expect(m.get("vigil_device_model_output")!.samples.length).toBe(3);
  });

  it("behavior: the ERROR frame is logged with its device, code and message, under component ingest", () => {
    const l = lines.filter((x) => x.msg === "device reported an error");
    expect(l.map((x) => [x.component, x.device, x.code, x.count, x.message])).toEqual([
      ["ingest", "00000001", 1, 1, "vib sensor stuck"],
      ["ingest", "00000001", 1, 2, "vib sensor stuck"],
    ]);
  });

  it("behavior: /readyz follows the store: low disk → 503 naming the store, space back → 200", async () => {
    const ready = async () => {
      const r = await fetch(`${rt.http!.url}/readyz`);
      return {
        status: r.status,
        body: (await r.json()) as { failing: Array<{ check: string; reason: string }> },
      };
    };
    expect((await ready()).status).toBe(200);
    free = 1000;
    await vi.waitFor(async () => expect((await ready()).status).toBe(503), { timeout: 5000 });
    expect((await ready()).body.failing).toMatchObject([{ check: "store", reason: "low-space" }]);
    expect(sample(await metrics(), "vigil_store_state", { state: "low-space" })).toBe(1);
    free = 1 << 30;
    await vi.waitFor(async () => expect((await ready()).status).toBe(200), { timeout: 5000 });
  });

  it("behavior: every log line is JSON with a component; counters are fields, not text in msg", async () => {
    await vi.waitFor(() => expect(lines.some((l) => l.msg === "stats")).toBe(true), { timeout: 5000 });
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(typeof l.component, JSON.stringify(l)).toBe("string");
    const comps = new Set(lines.map((l) => l.component));
    for (const c of ["ingest", "http", "runtime"]) expect(comps).toContain(c);
    const stats = lines.find((l) => l.msg === "stats")!;
    expect(stats).toMatchObject({
      component: "runtime",
      ingest: { accepted: expect.any(Number), nonFiniteFrames: expect.any(Number) }, // as the README says
    });
    for (const l of lines) expect(String(l.msg)).not.toMatch(/=\d/);
  });

  it("behavior: phases: stopping while the stages stop (not ready), then stopped, and the endpoint is closed", async () => {
    const url = rt.http!.url;
    const stopping = rt.stop();
    expect(rt.phase()).toBe("stopping");
    expect(readiness(rt).failing[0]).toMatchObject({ check: "phase", reason: "stopping" });
    await stopping;
    expect(rt.phase()).toBe("stopped");
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
