/** Subscriber-side harnesses for the shared publisher suite (publisher.suite.ts). */
import mqtt, { type MqttClient } from "mqtt";
import type { AlertPublisher, EncodedMessage } from "../../gateway/src/alerts/publisher.ts";
import { FakePublisher } from "../../gateway/src/alerts/publisher.ts";
import { topicMatches } from "../../gateway/src/ingest/mqtt/delivery-qos.ts";
import type { PublisherHarness, Seen } from "./publisher.suite.ts";

/** The fake, observed through its own records (its `retained` map mirrors a broker's). */
export function fakeHarness(): PublisherHarness {
  const publisher = new FakePublisher();
  const watchers: Array<{ filter: string; seen: Seen[] }> = [];
  const publish = publisher.publish.bind(publisher);
  publisher.publish = async (m: EncodedMessage) => {
    await publish(m);
    for (const w of watchers)
      if (topicMatches(w.filter, m.topic))
        w.seen.push({ topic: m.topic, payload: String(m.payload), retain: false });
  };
  return {
    publisher,
    subscribe(filter) {
      const seen: Seen[] = [];
      for (const [topic, payload] of publisher.retained)
        if (topicMatches(filter, topic)) seen.push({ topic, payload, retain: true });
      watchers.push({ filter, seen });
      return Promise.resolve(seen);
    },
    crash() {
      publisher.crash();
      return Promise.resolve();
    },
    cleanup: () => publisher.close(),
  };
}

/** A real broker at `url`, observed by mqtt.js subscribers. */
export function brokerHarness(
  url: string,
  publisher: AlertPublisher,
  o: { crash?: () => Promise<void>; cleanup?: () => Promise<void> } = {},
): PublisherHarness {
  const clients: MqttClient[] = [];
  return {
    publisher,
    async subscribe(filter) {
      const c = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0 });
      clients.push(c);
      const seen: Seen[] = [];
      c.on("message", (topic, payload, packet) =>
        seen.push({ topic, payload: payload.toString(), retain: packet.retain }),
      );
      await c.subscribeAsync(filter, { qos: 1 });
      return seen;
    },
    ...(o.crash ? { crash: o.crash } : {}),
    async cleanup() {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await publisher.close();
      await o.cleanup?.();
    },
  };
}
