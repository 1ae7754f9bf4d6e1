/**
 * The QoS a subscriber receives at, on any broker the gateway works with: the lower of the
 * message's and the subscription's, the highest matching subscription's when several match
 * [MQTT-3.8.4-6, MQTT-3.3.5-1]. Runs on the embedded broker (test/ingest/delivery-qos.test.ts) and
 * on Mosquitto (test/interop/delivery-qos-mosquitto.test.ts), so the rule asked of the embedded
 * broker is what a reference broker does.
 */
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it, vi } from "vitest";

export interface QosBroker {
  url: string;
  /** Publishes a retained QoS 1 message as the gateway does (alerts, health, statuses). */
  retain(topic: string, payload: string): Promise<void>;
  stop(): Promise<void>;
}

interface Received {
  topic: string;
  qos: number;
  retain: boolean;
}

const STATUS = "vigil/v1/site-1/gw-1/0000002a/status";
const FRAME = "vigil/v1/ingest/0000002a/json";
const frame = (seq: number): string =>
  JSON.stringify({ v: 1, type: "data", device: "0000002a", seq, values: [1.5] });

export function deliveryQosSuite(name: string, make: () => Promise<QosBroker>): void {
  describe(`delivered QoS: ${name}`, () => {
    const clients: MqttClient[] = [];
    let broker: QosBroker | undefined;
    afterEach(async () => {
      for (const c of clients.splice(0)) await c.endAsync(true);
      await broker?.stop();
      broker = undefined;
    });

    async function subscriber(filters: Record<string, 0 | 1 | 2>): Promise<Received[]> {
      const c = await mqtt.connectAsync(broker!.url, { reconnectPeriod: 0 });
      clients.push(c);
      const got: Received[] = [];
      c.on("message", (topic, _p, packet) => got.push({ topic, qos: packet.qos, retain: packet.retain }));
      const granted = await c.subscribeAsync(
        Object.fromEntries(Object.entries(filters).map(([f, qos]) => [f, { qos }])),
      );
      expect(granted.map((g) => g.qos)).toEqual(Object.values(filters));
      return got;
    }

    it("behavior: a retained QoS 1 message reaches a QoS 0 wildcard subscription at QoS 0 [MQTT-3.8.4-6]", async () => {
      broker = await make();
      await broker.retain(STATUS, '{"state":"online"}');
      const exact0 = await subscriber({ [STATUS]: 0 });
      const wild0 = await subscriber({ "vigil/v1/+/+/+/status": 0 });
      const hash0 = await subscriber({ "vigil/v1/site-1/#": 0 });
      // Overlapping filters: at least one copy at the highest granted QoS of the matching ones; a
      // broker may send one copy per matching filter [MQTT-3.3.5-1] (Mosquitto: at 0 and at 1).
      const both = await subscriber({ "vigil/v1/#": 0, "vigil/v1/site-1/+/+/status": 1 });
      const want = (qos: number): Received[] => [{ topic: STATUS, qos, retain: true }];
      await vi.waitFor(() => {
        expect(exact0).toEqual(want(0));
        expect(wild0).toEqual(want(0));
        expect(hash0).toEqual(want(0));
        expect(Math.max(...both.map((r) => r.qos))).toBe(1);
      });
      expect(both.every((r) => r.topic === STATUS && r.retain)).toBe(true);
    });

    it("behavior: a QoS 2 PUBLISH reaches a QoS 1 wildcard subscription at QoS 1, a QoS 0 one at QoS 0", async () => {
      broker = await make();
      const wild1 = await subscriber({ "vigil/v1/ingest/#": 1 });
      const wild0 = await subscriber({ "vigil/v1/ingest/+/json": 0 });
      const exact2 = await subscriber({ [FRAME]: 2 });
      const device = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: "dev-2a" });
      clients.push(device);
      await device.publishAsync(FRAME, frame(1), { qos: 2 });
      await vi.waitFor(() => {
        expect(wild1.filter((r) => r.topic === FRAME)).toEqual([{ topic: FRAME, qos: 1, retain: false }]);
        expect(wild0.filter((r) => r.topic === FRAME)).toEqual([{ topic: FRAME, qos: 0, retain: false }]);
        expect(exact2.filter((r) => r.topic === FRAME)).toEqual([{ topic: FRAME, qos: 2, retain: false }]);
      });
    });
  });
}
