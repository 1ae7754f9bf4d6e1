/**
 * Ingest through an external Mosquitto broker (Debian package), started by the test on a
 * free loopback port: devices publish to Mosquitto, the gateway subscribes with a persistent
 * session and PUBACKs only after the frame is stored.
 */
import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import { Gateway } from "../../gateway/src/gateway.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { mosquitto } from "../helpers/procs.ts";
import { reconciliationSuite, type ReconcileEnv } from "../helpers/reconcile.ts";

let gwN = 0;
async function external(): Promise<ReconcileEnv> {
  const broker = await mosquitto();
  const sink = new MemorySink();
  const gateway = new Gateway({
    config: resolveConfig({
      mqtt: { embedded: { enabled: false }, url: broker.url, clientId: `vigil-gw-${gwN++}` },
    }),
    sink,
  });
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
    const config = resolveConfig({
      mqtt: { embedded: { enabled: false }, url: broker.url, clientId: "vigil-gw-persist" },
    });
    try {
      const gw1 = new Gateway({ config, sink });
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
      const gw2 = new Gateway({ config, sink });
      await gw2.start();
      const t0 = Date.now();
      while (sink.records.length < 50 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      await gw2.stop();
      expect(sink.records.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    } finally {
      await broker.stop();
    }
  });

  it("behavior: a refused store write withholds the PUBACK; the broker redelivers after the store recovers", async () => {
    const broker = await mosquitto();
    const sink = new MemorySink();
    const gw = new Gateway({
      config: resolveConfig({
        mqtt: { embedded: { enabled: false }, url: broker.url, clientId: "vigil-gw-retry" },
      }),
      sink,
    });
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
      const t0 = Date.now();
      while (!gw.ingest.counters.rejected.STORE_UNAVAILABLE && Date.now() - t0 < 3000)
        await new Promise((r) => setTimeout(r, 20));
      expect(sink.records).toHaveLength(0);
      sink.failWith = undefined;
      while (sink.records.length < 1 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      expect(sink.records.map((r) => [r.deviceId, r.seq])).toEqual([[6, 1]]);
    } finally {
      await gw.stop();
      await broker.stop();
    }
  });
});
