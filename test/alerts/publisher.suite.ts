/**
 * The one test suite every AlertPublisher passes (alerts/publisher.ts): the in-memory fake and the
 * embedded aedes broker in the unit suite (test/alerts/publisher.test.ts), an external Mosquitto
 * through mqtt.js in interop (test/interop/publisher-mosquitto.test.ts). A harness gives the suite
 * what it needs to look from a subscriber's side.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AlertPublisher, EncodedMessage } from "../../gateway/src/alerts/publisher.ts";

export interface Seen {
  topic: string;
  payload: string;
  retain: boolean;
}

export interface PublisherHarness {
  publisher: AlertPublisher;
  /** Starts watching `filter` as a subscriber would; what it receives, in order. */
  subscribe(filter: string): Promise<Seen[]>;
  /** Ends the gateway's connection without a clean close (undefined: the publisher has no will). */
  crash?: () => Promise<void>;
  cleanup(): Promise<void>;
}

const msg = (topic: string, payload: string, retain = false): EncodedMessage => ({
  topic,
  payload,
  qos: 1,
  retain,
});
const WILL = msg("vigil/v1/site-1/gw-1/status", '{"state":"offline","reason":"will"}', true);

export function publisherSuite(name: string, make: () => Promise<PublisherHarness>): void {
  describe(`AlertPublisher: ${name}`, () => {
    let h: PublisherHarness | undefined;
    afterEach(async () => {
      await h?.cleanup();
      h = undefined;
    });

    it("behavior: messages reach a subscriber in publish order, each counted once acknowledged", async () => {
      h = await make();
      await h.publisher.open(WILL);
      const seen = await h.subscribe("vigil/v1/site-1/gw-1/alerts/#");
      for (let i = 0; i < 50; i++)
        await h.publisher.publish(msg(`vigil/v1/site-1/gw-1/alerts/${i % 3}`, `a${i}`));
      await vi.waitFor(() => expect(seen).toHaveLength(50));
      expect(seen.map((s) => s.payload)).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
      expect(h.publisher.counters.published).toBe(50);
      expect(h.publisher.counters.failed).toBe(0);
    });

    it("behavior: a retained message and a live one published at once both reach a live subscriber, in order", async () => {
      // What the gateway does: a device status (retained), then at once its sensor fault (live).
      // aedes 1.2 dropped the retained one for live subscribers (its per-client dedupe saw the
      // live one, published later, arrive first): the embedded broker now publishes in order.
      h = await make();
      await h.publisher.open(WILL);
      const seen = await h.subscribe("vigil/v1/site-1/gw-1/+/#");
      const sent: string[] = [];
      const all: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        all.push(h.publisher.publish(msg(`vigil/v1/site-1/gw-1/0000000${i % 2}/status`, `s${i}`, true)));
        all.push(h.publisher.publish(msg(`vigil/v1/site-1/gw-1/0000000${i % 2}/sensor-fault`, `f${i}`)));
        sent.push(`s${i}`, `f${i}`);
      }
      await Promise.all(all);
      await vi.waitFor(() => expect(seen.map((s) => s.payload)).toEqual(sent));
    });

    it("behavior: a retained message reaches a later subscriber, and a newer one replaces it", async () => {
      h = await make();
      await h.publisher.open(WILL);
      const topic = "vigil/v1/site-1/gw-1/health/00000007";
      await h.publisher.publish(msg(topic, "rul=80", true));
      await h.publisher.publish(msg(topic, "rul=79", true));
      const late = await h.subscribe(topic);
      await vi.waitFor(() => expect(late).toEqual([{ topic, payload: "rul=79", retain: true }]));
    });

    it("behavior: a gateway that vanishes leaves its will as the retained status (brokers with a will)", async (ctx) => {
      h = await make();
      if (!h.crash) return ctx.skip(); // the embedded broker dies with the gateway: no one is left to tell
      await h.publisher.open(WILL);
      await h.publisher.publish(msg(WILL.topic, '{"state":"online"}', true));
      await h.crash();
      await vi.waitFor(async () => {
        const now = await h!.subscribe(WILL.topic);
        await vi.waitFor(() => expect(now).toHaveLength(1), 500);
        expect(now[0]).toEqual({ topic: WILL.topic, payload: String(WILL.payload), retain: true });
      });
    });
  });
}
