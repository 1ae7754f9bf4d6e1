/** The delivered-QoS suite (test/ingest/delivery-qos.suite.ts) on a real Mosquitto: the reference. */
import mqtt from "mqtt";
import { deliveryQosSuite } from "../ingest/delivery-qos.suite.ts";
import { mosquitto } from "../helpers/procs.ts";

deliveryQosSuite("Mosquitto", async () => {
  const broker = await mosquitto();
  return {
    url: broker.url,
    retain: async (topic, payload) => {
      const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      await c.publishAsync(topic, payload, { qos: 1, retain: true });
      await c.endAsync();
    },
    stop: () => broker.stop(),
  };
});
