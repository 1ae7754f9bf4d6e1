/**
 * `npm run bench -- publish [--messages N] [--subscribers S] [--retained-every K] [--runs R]`
 *
 * The gateway's publications through the embedded broker (ingest/mqtt/embedded-broker.ts
 * `publish`), in order, against aedes' own `publish` unordered (the baseline, measured in the same
 * run): N QoS 1 messages (default 20,000) published at once, every K-th (default 10) retained on a
 * `…/status` topic, the rest live `…/sensor-fault` ones, to S (default 2) mqtt.js subscribers on
 * loopback subscribed to `vigil/#` at QoS 1. Per way, the median of R (default 3) runs of:
 * - messages/s: N / (time from the first publish to the last subscriber's last message, or to
 *   the point where nothing more arrives for 1 s);
 * - messages each subscriber missed (aedes 1.2 alone drops a retained message for a live
 *   subscriber when a message published after it reached it first: the reason for the order).
 * Last line: one JSON object.
 */
import mqtt from "mqtt";
import { benchOptions, int } from "./lib/options.ts";
import { EmbeddedBroker } from "../gateway/src/ingest/mqtt/embedded-broker.ts";
import { Ingest } from "../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../gateway/src/ingest/memory-sink.ts";

const o = benchOptions(
  import.meta.url,
  {
    messages: { type: "string" },
    subscribers: { type: "string" },
    "retained-every": { type: "string" },
    runs: { type: "string" },
  },
  (v) => ({
    messages: int("messages", v.messages, 20_000, 1),
    subscribers: int("subscribers", v.subscribers, 2, 1),
    retainedEvery: int("retained-every", v["retained-every"], 10, 1),
    runs: int("runs", v.runs, 3, 1),
  }),
);

type Way = "aedes (unordered)" | "EmbeddedBroker.publish (ordered)";

interface Run {
  perSecond: number;
  missed: number;
}

async function once(way: Way): Promise<Run> {
  const broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink() }), { host: "127.0.0.1", port: 0 });
  await broker.start();
  const subs = await Promise.all(
    Array.from({ length: o.subscribers }, (_, i) =>
      mqtt.connectAsync(broker.url, { clientId: `bench-sub-${i}`, reconnectPeriod: 0 }),
    ),
  );
  const counts = subs.map(() => 0);
  let last = performance.now();
  subs.forEach((s, i) =>
    s.on("message", () => {
      counts[i]!++;
      last = performance.now();
    }),
  );
  await Promise.all(subs.map((s) => s.subscribeAsync("vigil/#", { qos: 1 })));
  const aedes = broker.broker!;
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < o.messages; i++) {
    const retain = i % o.retainedEvery === 0;
    const topic = `vigil/v1/s/g/${(i % 100).toString(16).padStart(8, "0")}/${retain ? "status" : "sensor-fault"}`;
    const payload = `{"i":${i}}`;
    if (way === "aedes (unordered)")
      all.push(
        new Promise((res) =>
          aedes.publish(
            { cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, retain, dup: false },
            () => res(),
          ),
        ),
      );
    else all.push(broker.publish(topic, payload, { qos: 1, retain }));
  }
  await Promise.all(all);
  // Until every subscriber has everything, or nothing arrived for 1 s (what was dropped).
  while (counts.some((c) => c < o.messages) && performance.now() - last < 1000)
    await new Promise((r) => setTimeout(r, 5));
  const missed = counts.reduce((a, c) => a + (o.messages - c), 0);
  await Promise.all(subs.map((s) => s.endAsync()));
  await broker.stop();
  return { perSecond: o.messages / ((last - t0) / 1000), missed };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const UNORDERED: Way = "aedes (unordered)";
const ORDERED: Way = "EmbeddedBroker.publish (ordered)";
const ways: Way[] = [UNORDERED, ORDERED];
const results: Record<string, { perSecond: number; missedPerSubscriber: number }> = {};
for (const way of ways) {
  const runs: Run[] = [];
  // Alternating would mix warm-up effects into both; one warm-up run of each way first.
  await once(way);
  for (let r = 0; r < o.runs; r++) runs.push(await once(way));
  results[way] = {
    perSecond: Math.round(median(runs.map((r) => r.perSecond))),
    missedPerSubscriber: median(runs.map((r) => r.missed)) / o.subscribers,
  };
}
const base = results[UNORDERED]!;
const ordered = results[ORDERED]!;
console.log(
  `${o.messages} QoS 1 messages (every ${o.retainedEvery}th retained) to ${o.subscribers} subscribers, median of ${o.runs} runs`,
);
console.log("| way | messages/s | missed per subscriber |");
console.log("|---|---:|---:|");
for (const way of ways)
  console.log(
    `| ${way} | ${results[way]!.perSecond.toLocaleString("en")} | ${results[way]!.missedPerSubscriber} |`,
  );
const ratio = ordered.perSecond / base.perSecond;
console.log(`ordered / unordered throughput: ${ratio.toFixed(2)}×`);
console.log(
  JSON.stringify({
    bench: "publish",
    messages: o.messages,
    subscribers: o.subscribers,
    retainedEvery: o.retainedEvery,
    runs: o.runs,
    unordered: base,
    ordered,
    throughputRatio: Number(ratio.toFixed(3)),
  }),
);
