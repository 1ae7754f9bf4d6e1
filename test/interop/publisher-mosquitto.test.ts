/** The shared publisher suite (test/alerts/publisher.suite.ts) on a real Mosquitto through mqtt.js. */
import { MqttClientPublisher } from "../../gateway/src/alerts/mqtt-publisher.ts";
import { brokerHarness } from "../alerts/publisher-harness.ts";
import { publisherSuite } from "../alerts/publisher.suite.ts";
import { mosquitto } from "../helpers/procs.ts";

publisherSuite("Mosquitto (mqtt.js)", async () => {
  const broker = await mosquitto();
  const publisher = new MqttClientPublisher({ url: broker.url, clientId: "vigil-gw-suite", keepalive: 5 });
  return brokerHarness(broker.url, publisher, {
    // Abrupt end of the TCP connection, no DISCONNECT: the broker publishes the will [MQTT-3.1.2-8].
    crash: () => {
      const c = publisher.client;
      if (c) {
        c.options.reconnectPeriod = 0;
        c.stream.destroy();
      }
      return Promise.resolve();
    },
    cleanup: () => broker.stop(),
  });
});
