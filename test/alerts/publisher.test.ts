import mqtt from "mqtt";
import { describe, expect, it, vi } from "vitest";
import { EmbeddedPublisher } from "../../gateway/src/alerts/embedded-publisher.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { brokerHarness, fakeHarness } from "./publisher-harness.ts";
import { publisherSuite } from "./publisher.suite.ts";

publisherSuite("fake", () => Promise.resolve(fakeHarness()));

publisherSuite("embedded aedes broker", async () => {
  const broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink(), clock: new FakeClock() }), {
    host: "127.0.0.1",
    port: 0,
  });
  await broker.start();
  return brokerHarness(broker.url, new EmbeddedPublisher(broker), { cleanup: () => broker.stop() });
});

describe("EmbeddedBroker.publish (the gateway's ordered publications)", () => {
  it("error: a publication aedes refuses rejects typed, is counted, and does not hold the next ones", async () => {
    const broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink(), clock: new FakeClock() }), {
      host: "127.0.0.1",
      port: 0,
    });
    await broker.start();
    const sub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const got: string[] = [];
      sub.on("message", (_t, p) => got.push(p.toString()));
      await sub.subscribeAsync("vigil/#", { qos: 1 });
      const publisher = new EmbeddedPublisher(broker);
      // aedes refuses a topic deeper than its maxTopicLevels before emitting it.
      const deep = `vigil/${"x/".repeat(1000)}end`;
      const refused = publisher.publish({ topic: deep, payload: "no", qos: 1, retain: true });
      const after = publisher.publish({ topic: "vigil/v1/s/g/status", payload: "yes", qos: 1, retain: true });
      await expect(refused).rejects.toMatchObject({
        name: "PublishError",
        cause: { name: "SourceError", code: "MQTT_IO" },
      });
      await after;
      await vi.waitFor(() => expect(got).toEqual(["yes"]));
      expect(publisher.counters).toMatchObject({ published: 1, failed: 1 });
    } finally {
      await sub.endAsync();
      await broker.stop();
    }
  });
});
