import { describe, expect, it } from "vitest";
import { EmbeddedPublisher } from "../../gateway/src/alerts/embedded-publisher.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { deliveryQos, topicMatches } from "../../gateway/src/ingest/mqtt/delivery-qos.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { deliveryQosSuite } from "./delivery-qos.suite.ts";

describe("topicMatches (MQTT 3.1.1 §4.7)", () => {
  it.each([
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/+", "a/b", true],
    ["a/+", "a/", true], // '+' matches an empty level
    ["a/+", "a/b/c", false],
    ["a/+", "a", false],
    ["a/#", "a", true], // [MQTT-4.7.1-2]: '#' includes the parent level
    ["a/#", "a/b/c", true],
    ["#", "a/b", true],
    ["+/+", "/a", true],
    ["#", "$SYS/x", false], // [MQTT-4.7.2-1]
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["a/#/b", "a/c/b", false], // '#' only last: an invalid filter matches nothing
  ])("%s matches %s: %s", (filter, topic, want) => {
    expect(topicMatches(filter, topic)).toBe(want);
  });
});

describe("deliveryQos", () => {
  it("behavior: the lower of the message's QoS and the highest matching subscription's", () => {
    const subs = { "a/#": { qos: 0 }, "a/+/c": { qos: 1 }, "x/y": { qos: 2 } };
    expect(deliveryQos(subs, "a/b", 1)).toBe(0);
    expect(deliveryQos(subs, "a/b/c", 2)).toBe(1);
    expect(deliveryQos(subs, "a/b/c", 0)).toBe(0);
    expect(deliveryQos(subs, "x/y", 2)).toBe(2);
    expect(deliveryQos({ "a/#": {} }, "a/b", 1)).toBe(0); // aedes leaves qos unset for 0
  });

  it("behavior: no matching subscription leaves the message's QoS (a stored session's queue)", () => {
    expect(deliveryQos({ "b/#": { qos: 0 } }, "a/b", 1)).toBe(1);
    expect(deliveryQos({}, "a/b", 2)).toBe(2);
  });
});

deliveryQosSuite("the embedded aedes broker", async () => {
  const broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink(), clock: new FakeClock() }), {
    host: "127.0.0.1",
    port: 0,
  });
  await broker.start();
  const publisher = new EmbeddedPublisher(broker);
  return {
    url: broker.url,
    retain: (topic, payload) => publisher.publish({ topic, payload, qos: 1, retain: true }),
    stop: () => broker.stop(),
  };
});
