import mqtt from "mqtt";
import { describe, expect, it, vi } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { decodeFrame, encodeFrame, FrameType, NackReason } from "../../gateway/src/protocol/frame.ts";
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

describe("embedded broker: a store failure over MQTT", () => {
  it("error: STORE_UNAVAILABLE is not PUBACKed: the device's connection is closed, its persistent session redelivers the PUBLISH once the store is back, and the NACK arrives after the reconnect", async () => {
    const env = await embedded();
    try {
      const raw = encodeFrame({
        type: FrameType.Data,
        deviceId: 0x2b,
        seq: 1,
        timestampUs: 0,
        flags: 0,
        values: Float32Array.of(4),
      });
      env.sink.failWith = new Error("disk gone");
      const c = await mqtt.connectAsync(env.gateway.embedded!.url, {
        clientId: "dev-2b",
        clean: false,
        reconnectPeriod: 50,
      });
      const nacks: number[] = [];
      c.on("message", (_t, payload) => {
        const f = decodeFrame(payload);
        if (f.type === FrameType.Nack) nacks.push(f.reason);
      });
      await c.subscribeAsync("vigil/v1/ingest/0000002b/nack", { qos: 1 });
      const closed = new Promise<void>((res) => c.once("close", () => res()));
      const acked = c.publishAsync("vigil/v1/ingest/0000002b", raw, { qos: 1 });
      // MQTT 3.1.1 has no negative PUBACK: the refusal is the closed connection.
      await closed;
      expect(env.gateway.ingest.counters.rejected.STORE_UNAVAILABLE).toBeGreaterThan(0);
      expect(env.sink.records).toHaveLength(0);
      env.sink.failWith = undefined;
      // [MQTT-4.4.0-1]: on reconnect with the session kept, the client resends the PUBLISH.
      await acked;
      expect(env.sink.records.map((r) => [r.deviceId, r.seq])).toEqual([[0x2b, 1]]);
      // The NACK published before the close waited in the session.
      await vi.waitFor(() => expect(nacks).toContain(NackReason.STORE_UNAVAILABLE), {
        timeout: 5000,
        interval: 20,
      });
      await c.endAsync();
    } finally {
      await env.stop();
    }
  });
});
