/**
 * The embedded broker on a free loopback port over an in-memory ingest, for the broker's bound
 * tests; everything started is stopped after each test, in reverse order.
 */
import { afterEach } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import type { BrokerLimits } from "../../gateway/src/ingest/mqtt/policy.ts";

/** Call at a test file's top level: `stops` are run after each test; `broker` starts one. */
export function embeddedRig(): {
  stops: Array<() => Promise<unknown>>;
  broker(limits?: Partial<BrokerLimits>): Promise<EmbeddedBroker>;
} {
  const stops: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });
  return {
    stops,
    async broker(limits = {}) {
      const b = new EmbeddedBroker(new Ingest({ sink: new MemorySink(), clock: new FakeClock() }), {
        host: "127.0.0.1",
        port: 0,
        limits,
      });
      await b.start();
      stops.push(() => b.stop());
      return b;
    },
  };
}
