import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { reconciliationSuite, type ReconcileEnv } from "../helpers/reconcile.ts";
import { ingestRig } from "../helpers/rig.ts";

async function embedded(): Promise<ReconcileEnv> {
  const sink = new MemorySink();
  const gateway = ingestRig({ sink, embedded: true });
  await gateway.start();
  const url = gateway.embedded!.url;
  let n = 0;
  return {
    sink,
    gateway,
    transport: () => new MqttTransport({ url, clientId: `sim-${n++}` }),
    stop: () => gateway.stop(),
  };
}

reconciliationSuite("the embedded aedes broker", embedded);

describe("embedded broker: malformed MQTT input", () => {
  it("error: malformed payloads, bad JSON, topic mismatches and reserved topics are counted, the broker keeps serving", async () => {
    const env = await embedded();
    try {
      const c = await mqtt.connectAsync(env.gateway.embedded!.url, { clientId: "bad" });
      const good = encodeFrame({
        type: FrameType.Data,
        deviceId: 0x2a,
        seq: 1,
        timestampUs: 0,
        flags: 0,
        values: Float32Array.of(1),
      });
      await c.publishAsync("vigil/v1/ingest/0000002a", Buffer.from([1, 2, 3]), { qos: 1 });
      await c.publishAsync("vigil/v1/ingest/0000002a/json", "{not json", { qos: 1 });
      await c.publishAsync(
        "vigil/v1/ingest/0000002a/json",
        JSON.stringify({ v: 1, type: "data", device: "0000002a", seq: -1, values: [1] }),
        { qos: 1 },
      );
      await c.publishAsync("vigil/v1/ingest/00000001", good, { qos: 1 });
      await c.publishAsync("vigil/v1/ingest/zz", good, { qos: 1 });
      await c.publishAsync("vigil/v1/ingest/0000002a", good, { qos: 1 });
      await c.publishAsync(
        "vigil/v1/ingest/0000002a/json",
        JSON.stringify({ v: 1, type: "data", device: "0000002a", seq: 2, values: [1e39] }),
        { qos: 1 },
      );
      await c.publishAsync(
        "vigil/v1/ingest/0000002a/json",
        JSON.stringify({ v: 1, type: "data", device: "0000002a", seq: 3, values: [2.5] }),
        { qos: 1 },
      );
      await c.endAsync();
      expect(env.gateway.ingest.counters.rejected).toEqual({
        TRUNCATED: 1,
        BAD_JSON: 2,
        TOPIC_MISMATCH: 2,
      });
      // 1e39 is beyond float32: +Inf, a well-formed value since revision 1.2, stored and marked.
      expect(env.sink.records.map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(env.gateway.ingest.counters.nonFiniteFrames).toBe(1);

      // Publishing under the gateway's own topics is refused by disconnecting the client.
      const d = await mqtt.connectAsync(env.gateway.embedded!.url, { clientId: "rogue", reconnectPeriod: 0 });
      const closed = new Promise<void>((res) => d.once("close", () => res()));
      d.publish("vigil/v1/site/gw/0000002a/alert", "fake", { qos: 1 });
      await closed;
      d.end(true);
    } finally {
      await env.stop();
    }
  });
});
