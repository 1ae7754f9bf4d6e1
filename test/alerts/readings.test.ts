/**
 * Decoded readings for dashboards (alerts/readings.ts, vigil-json.ts `reading`): the per-device
 * throttle (first at once, latest of each interval, flushed at stop), the float32 → JSON rule,
 * and end to end on the embedded broker: a device's HELLO + DATA frames over MQTT come out as
 * schema-valid JSON on `{device}/reading` with the HELLO's channel names.
 */
import fc from "fast-check";
import mqtt from "mqtt";
import { describe, expect, it, vi } from "vitest";
import type { ReadingEvent } from "../../gateway/src/alerts/events.ts";
import { ReadingFeed } from "../../gateway/src/alerts/readings.ts";
import { float32Json } from "../../gateway/src/alerts/vigil-json.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { INGEST_TOPIC_PREFIX } from "../../gateway/src/protocol/topics.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { checkPayload } from "./helpers.ts";

function reading(deviceId: number, seq: number): ReadingEvent {
  return {
    kind: "reading",
    deviceId,
    seq,
    timestampUs: 1_700_000_000_000_000 + seq,
    receivedUs: 1_700_000_000_000_000 + seq,
    channels: ["a"],
    values: new Float32Array([seq]),
    clockUnverified: false,
  };
}

describe("ReadingFeed", () => {
  it("behavior: at most one reading per device per interval: the first at once, the latest when the interval ends, the rest counted", () => {
    vi.useFakeTimers();
    try {
      const clock = new FakeClock(1_000_000_000);
      const out: Array<[number, number]> = [];
      const feed = new ReadingFeed({
        intervalMs: 1000,
        clock,
        timers: { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as never) },
        emit: (e) => out.push([e.deviceId, e.seq]),
      });
      feed.offer(reading(1, 0));
      feed.offer(reading(2, 0));
      for (let s = 1; s <= 5; s++) feed.offer(reading(1, s)); // within the interval
      expect(out).toEqual([
        [1, 0],
        [2, 0],
      ]);
      clock.advanceMs(1000);
      vi.advanceTimersByTime(1000);
      expect(out.at(-1)).toEqual([1, 5]); // the latest, not the first held
      expect(feed.counters).toEqual({ published: 3, throttled: 4 });
      feed.offer(reading(2, 1)); // device 2's interval has passed: at once
      expect(out.at(-1)).toEqual([2, 1]);
      feed.offer(reading(2, 2));
      feed.stop(); // held readings go out at stop
      expect(out.at(-1)).toEqual([2, 2]);
      feed.offer(reading(2, 3));
      expect(out.at(-1)).toEqual([2, 2]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("behavior: interval 0 publishes every frame", () => {
    const out: number[] = [];
    const feed = new ReadingFeed({
      intervalMs: 0,
      clock: new FakeClock(),
      timers: { setTimeout: () => undefined, clearTimeout: () => undefined },
      emit: (e) => out.push(e.seq),
    });
    for (let s = 0; s < 4; s++) feed.offer(reading(1, s));
    expect(out).toEqual([0, 1, 2, 3]);
  });
});

describe("float32Json", () => {
  it("behavior: the shortest decimal that reads back as the same float32; null for NaN and ±Inf [RFC 8259 §6]", () => {
    expect(float32Json(Math.fround(0.1))).toBe(0.1);
    expect(float32Json(21.5)).toBe(21.5);
    expect(float32Json(Math.fround(641.82))).toBe(641.82);
    expect([NaN, Infinity, -Infinity].map(float32Json)).toEqual([null, null, null]);
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (f) => {
        const j = float32Json(f)!;
        expect(Math.fround(JSON.parse(JSON.stringify(j)) as number)).toBe(f === 0 ? 0 : f);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("readings on the embedded broker", () => {
  it("behavior: a device's stored frames come out as JSON on {device}/reading with its HELLO's channel names; NaN is null", async () => {
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 },
        site: "plant-7",
        mqtt: { embedded: { port: 0 }, readingsIntervalMs: 0 },
        attest: { enabled: false, gatewayName: "gw-1" },
        models: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
      store: new MemoryFrameStore(),
    });
    await rt.start();
    const dash = await mqtt.connectAsync(rt.embedded!.url, { clientId: "dash", protocolVersion: 4 });
    const dev = await mqtt.connectAsync(rt.embedded!.url, { clientId: "dev-0000002a", protocolVersion: 4 });
    try {
      const got: Array<Record<string, unknown>> = [];
      dash.on("message", (topic, payload) => {
        expect(topic).toBe("vigil/v1/plant-7/gw-1/0000002a/reading");
        got.push(checkPayload("reading", payload));
      });
      await dash.subscribeAsync("vigil/v1/+/+/+/reading", { qos: 0 });
      const topic = `${INGEST_TOPIC_PREFIX}0000002a`;
      const hello = encodeFrame({
        type: FrameType.Hello,
        deviceId: 42,
        bootId: 7,
        firmware: { major: 1, minor: 0, patch: 0 },
        profile: "demo",
        channels: [
          { name: "temp", unit: 0 },
          { name: "rpm", unit: 0 },
        ],
      });
      await dev.publishAsync(topic, Buffer.from(hello), { qos: 1 });
      const now = Date.now() * 1000;
      for (let seq = 0; seq < 3; seq++)
        await dev.publishAsync(
          topic,
          Buffer.from(
            encodeFrame({
              type: FrameType.Data,
              deviceId: 42,
              seq,
              timestampUs: now + seq,
              flags: 0,
              values: new Float32Array([21.5 + seq, seq === 1 ? NaN : 1500]),
            }),
          ),
          { qos: 1 },
        );
      await vi.waitFor(() => expect(got).toHaveLength(3), { timeout: 5000, interval: 10 });
      expect(got.map((g) => [g.seq, g.values])).toEqual([
        [0, [21.5, 1500]],
        [1, [22.5, null]],
        [2, [23.5, 1500]],
      ]);
      expect(got[0]).toMatchObject({
        device: "0000002a",
        site: "plant-7",
        gateway: "gw-1",
        channels: ["temp", "rpm"],
        timestampUs: now,
        clockUnverified: expect.any(Boolean) as boolean,
      });
      expect(rt.alerts.counters.readingsPublished).toBe(3);
    } finally {
      await dev.endAsync();
      await dash.endAsync();
      await rt.stop();
    }
  });
});
