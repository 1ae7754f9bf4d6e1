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
