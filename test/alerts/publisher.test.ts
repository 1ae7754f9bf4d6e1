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

/** An embedded broker on a free loopback port, started, over a memory store. */
async function startedBroker(): Promise<EmbeddedBroker> {
  const broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink(), clock: new FakeClock() }), {
    host: "127.0.0.1",
    port: 0,
  });
  await broker.start();
  return broker;
}

publisherSuite("embedded aedes broker", async () => {
  const broker = await startedBroker();
  return brokerHarness(broker.url, new EmbeddedPublisher(broker), { cleanup: () => broker.stop() });
});

describe("EmbeddedBroker.publish (the gateway's ordered publications)", () => {
  it("behavior: a device's frame published at once does not cost a `vigil/v1/#` subscriber the gateway's retained status", async () => {
    const broker = await startedBroker();
    const sub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const got: string[] = [];
      sub.on("message", (t, p) => got.push(`${t} ${p.toString()}`));
      // Two filters match the status: aedes' dedupe must still deliver it once.
      await sub.subscribeAsync(["vigil/v1/#", "vigil/v1/s/#"], { qos: 1 });
      const publisher = new EmbeddedPublisher(broker);
      const want: string[] = [];
      const status = `vigil/v1/s/g/0000002a/status`;
      const frame = "vigil/v1/ingest/0000002a/json";
      for (let i = 0; i < 10; i++) {
        const s = publisher.publish({ topic: status, payload: `s${i}`, qos: 1, retain: true });
        // Now the status has its broker counter and waits for the retained store; a device's frame
        // (as aedes publishes it once authorizePublish let it through) gets a higher one.
        await Promise.resolve();
        const d = new Promise<void>((r) =>
          broker.broker!.publish(
            {
              cmd: "publish",
              topic: frame,
              payload: Buffer.from(`d${i}`),
              qos: 1,
              retain: false,
              dup: false,
            },
            () => r(),
          ),
        );
        await Promise.all([s, d]);
        want.push(`${status} s${i}`, `${frame} d${i}`);
      }
      // Every message arrives once; the device's frames are not ordered with the gateway's.
      await vi.waitFor(() => expect([...got].sort()).toEqual([...want].sort()));
    } finally {
      await sub.endAsync();
      await broker.stop();
    }
  });

  it("error: a publication aedes refuses rejects typed, is counted, and does not hold the next ones", async () => {
    const broker = await startedBroker();
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
