/**
 * Ingest through an external Mosquitto broker (Debian package), started by the test on a
 * free loopback port: devices publish to Mosquitto, the gateway subscribes with a persistent
 * session and PUBACKs only after the frame is stored.
 */
import mqtt from "mqtt";
import { describe, expect, it, vi } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { mosquitto } from "../helpers/procs.ts";
import { reconciliationSuite, type ReconcileEnv } from "../helpers/reconcile.ts";
import { ingestRig } from "../helpers/rig.ts";

let gwN = 0;
async function external(): Promise<ReconcileEnv> {
  const broker = await mosquitto();
  const sink = new MemorySink();
  const gateway = ingestRig({ sink, mqttUrl: broker.url, clientId: `vigil-gw-${gwN++}` });
  await gateway.start();
  let n = 0;
  return {
    sink,
    gateway,
    transport: () => new MqttTransport({ url: broker.url, clientId: `sim-${n++}` }),
    stop: async () => {
      await gateway.stop();
      await broker.stop();
    },
  };
}

reconciliationSuite("an external Mosquitto broker", external);

describe("external broker: persistent session", () => {
  it("behavior: frames published while the gateway is down are delivered when it comes back", async () => {
    const broker = await mosquitto();
    const sink = new MemorySink();
    const rig = () => ingestRig({ sink, mqttUrl: broker.url, clientId: "vigil-gw-persist" });
    try {
      const gw1 = rig();
      await gw1.start();
      await gw1.stop();
      const dev = await mqtt.connectAsync(broker.url, { clientId: "dev-1" });
      for (let seq = 1; seq <= 50; seq++) {
        const raw = encodeFrame({
          type: FrameType.Data,
          deviceId: 5,
          seq,
          timestampUs: 0,
          flags: 0,
          values: Float32Array.of(seq),
        });
        await dev.publishAsync("vigil/v1/ingest/00000005", raw, { qos: 1 });
      }
      await dev.endAsync();
      const gw2 = rig();
      await gw2.start();
      await vi.waitFor(() => expect(sink.records).toHaveLength(50), { timeout: 5000, interval: 20 });
      await gw2.stop();
      expect(sink.records.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    } finally {
      await broker.stop();
    }
  });

  it("behavior: a refused store write withholds the PUBACK; the broker redelivers after the store recovers", async () => {
    const broker = await mosquitto();
    const sink = new MemorySink();
    const gw = ingestRig({ sink, mqttUrl: broker.url, clientId: "vigil-gw-retry" });
    try {
      await gw.start();
      sink.failWith = new VigilError("STORE_FULL", "disk full");
      const dev = await mqtt.connectAsync(broker.url, { clientId: "dev-2" });
      const raw = encodeFrame({
        type: FrameType.Data,
        deviceId: 6,
        seq: 1,
        timestampUs: 0,
        flags: 0,
        values: Float32Array.of(1),
      });
      await dev.publishAsync("vigil/v1/ingest/00000006", raw, { qos: 1 });
      await dev.endAsync();
      await vi.waitFor(() => expect(gw.ingest.counters.rejected.STORE_UNAVAILABLE).toBeGreaterThan(0), {
        timeout: 3000,
        interval: 20,
      });
      expect(sink.records).toHaveLength(0);
      sink.failWith = undefined;
      await vi.waitFor(() => expect(sink.records).toHaveLength(1), { timeout: 10_000, interval: 50 });
      expect(sink.records.map((r) => [r.deviceId, r.seq])).toEqual([[6, 1]]);
    } finally {
      await gw.stop();
      await broker.stop();
    }
  });
});
