import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, expect, it, vi } from "vitest";
import type { GatewayEvent } from "../../gateway/src/alerts/events.ts";
import type { EventOutput } from "../../gateway/src/alerts/service.ts";
import { ManualTimers } from "../../gateway/src/core/timers.ts";
import { LiveFeed, SPARK_POINTS } from "../../gateway/src/http/live.ts";
import { PageModel } from "../../gateway/src/http/page-model.ts";
import { SseHub } from "../../gateway/src/http/sse.ts";
import { alert, health, T0_US } from "./events.ts";
import { FakeSource } from "./fake-source.ts";

describe("LiveFeed", () => {
  it("behavior: health is coalesced per device with the sparkline points it gained; the ring keeps the last 120", () => {
    const feed = new LiveFeed();
    feed.observe(health(1, 0.1));
    feed.observe(health(1, 0.2));
    feed.observe(health(2, 0.5, T0_US, 1));
    const d = feed.drain();
    expect(d.health).toEqual([
      {
        d: "00000001",
        pr: "rotating-v1",
        m: "rotating-v1-health@1.0.0",
        t: T0_US / 1000,
        o: [0.2],
        a: 0,
        p: [0.1, 0.2],
      },
      {
        d: "00000002",
        pr: "rotating-v1",
        m: "rotating-v1-health@1.0.0",
        t: T0_US / 1000,
        o: [0.5],
        a: 1,
        p: [0.5],
      },
    ]);
    expect(feed.changed).toBe(false);
    expect(feed.drain().health).toEqual([]);
    for (let i = 0; i < SPARK_POINTS + 30; i++) feed.observe(health(1, i));
    const h = feed.devices.get(1)!;
    expect(h.last()).toHaveLength(SPARK_POINTS);
    // 152 values pushed (0.1, 0.2, then 0…149): the oldest of the last 120 is 30.
    expect(h.last()[0]).toBe(30);
    expect(h.last().at(-1)).toBe(SPARK_POINTS + 29);
    // More points than the ring holds since the last drain: the delta carries the ring, not more.
    expect(feed.drain().health[0]!.p).toHaveLength(SPARK_POINTS);
  });

  it("behavior: outputs and sparkline points have 4 significant digits; NaN and ±Inf are null (as in MQTT health), never 0", async () => {
    const feed = new LiveFeed();
    for (const v of [0.123456789, NaN, Infinity, -Infinity, 1234.5678]) feed.observe(health(1, v));
    const d = feed.drain().health[0]!;
    expect([d.o, d.p]).toEqual([[1235], [0.1235, null, null, null, 1235]]);
    feed.observe(health(1, NaN));
    expect(feed.drain().health[0]!.o).toEqual([null]);
    const init = (await new PageModel(new FakeSource(), feed).init()).health[0]!;
    expect([init.outputs, init.p]).toEqual([[["p_fail", null]], [0.1235, null, null, null, 1235, null]]);
  });

  it("behavior: alerts: active until cleared, counted by state and severity, with their leaf hash", () => {
    const feed = new LiveFeed();
    feed.observe(alert(7, "raised", "warning"));
    feed.observe(alert(7, "raised", "critical"));
    feed.observe(alert(7, "cleared", "critical"));
    expect([...feed.active.values()].map((a) => [a.device, a.severity, a.leaf])).toEqual([
      ["00000007", "warning", "0x" + "a1".repeat(32)],
    ]);
    expect(Object.fromEntries(feed.alertCounts)).toEqual({
      "raised warning": 1,
      "raised critical": 1,
      "cleared critical": 1,
    });
    const d = feed.drain();
    expect(d.alerts.map((a) => a.state)).toEqual(["raised", "raised", "cleared"]);
    expect(d.alerts[0]).toMatchObject({ ruleId: "failure-warning", op: ">=", threshold: 0.5, value: 0.62 });
    expect(feed.recent).toHaveLength(3);
  });

  it("behavior: bounded: 50 recent transitions, 200 pending between two drains (the rest counted as dropped)", () => {
    const feed = new LiveFeed();
    for (let i = 0; i < 250; i++) feed.observe(alert(i, "raised", "info", `x${i}`));
    expect(feed.recent).toHaveLength(50);
    const d = feed.drain();
    expect(d.alerts).toHaveLength(200);
    expect(d.droppedAlerts).toBe(50);
    expect(d.alerts[0]!.alertId).toBe("x50");
    expect(feed.active.size).toBe(250);
  });

  it("behavior: tap shows every event to the feed and hands it to the inner output unchanged", async () => {
    const feed = new LiveFeed();
    const seen: GatewayEvent[] = [];
    let opened = false;
    let closed = false;
    const inner: EventOutput = {
      open: async () => void (opened = true),
      emit: async (e) => void seen.push(e),
      close: async () => void (closed = true),
    };
    const out = feed.tap(inner);
    await out.open({
      kind: "status",
      state: "offline",
      reason: "will",
      atUs: 0,
      models: [],
      anchoringPaused: null,
    });
    const e = health(3, 0.4);
    await out.emit(e);
    await out.close();
    expect(seen).toEqual([e]);
    expect(seen[0]).toBe(e);
    expect([opened, closed]).toEqual([true, true]);
    expect(feed.devices.get(3)!.outputs).toEqual([["p_fail", 0.4]]);
  });
});

/** A ServerResponse stand-in whose socket buffer the test controls. */
class FakeRes extends EventEmitter {
  chunks: string[] = [];
  writableLength = 0;
  status = 0;
  ended = false;
  writeHead(status: number): this {
    this.status = status;
    return this;
  }
  write(s: string): boolean {
    this.chunks.push(s);
    return true;
  }
  end(s?: string): void {
    if (s) this.chunks.push(s);
    this.ended = true;
  }
  destroy(): void {
    this.ended = true;
  }
  /** Parsed SSE messages written so far. */
  events(): Array<{ event: string; data: Record<string, unknown> }> {
    return this.chunks
      .join("")
      .split("\n\n")
      .filter((m) => m.startsWith("event: "))
      .map((m) => {
        const [ev, data] = m.split("\n");
        return { event: ev!.slice(7), data: JSON.parse(data!.slice(6)) as Record<string, unknown> };
      });
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe("SseHub", () => {
  function hub(o: { maxClients?: number; maxBufferedBytes?: number; maxStallMs?: number } = {}) {
    const src = new FakeSource();
    const feed = new LiveFeed();
    const timers = new ManualTimers();
    const h = new SseHub(new PageModel(src, feed), feed, { deltaMs: 250, statsMs: 1000, ...o }, timers);
    h.start();
    const connect = () => {
      const req = new EventEmitter() as unknown as IncomingMessage;
      const res = new FakeRes();
      const code = h.attach(req, res as unknown as ServerResponse);
      return { res, code, req: req as unknown as EventEmitter };
    };
    return { src, feed, timers, h, connect };
  }

  it("behavior: a page gets init on connect, then coalesced deltas and stats; nothing is sent when nothing changed", async () => {
    const { feed, timers, h, connect } = hub();
    feed.observe(health(1, 0.3));
    const { res, code } = connect();
    expect(code).toBe(200);
    expect(res.chunks[0]).toBe("retry: 2000\n\n");
    await settle();
    expect(res.events().map((e) => e.event)).toEqual(["init"]);
    expect((res.events()[0]!.data.health as unknown[]).length).toBe(1);
    feed.observe(health(1, 0.4));
    feed.observe(health(1, 0.5));
    feed.observe(alert(1, "raised"));
    timers.advance(250);
    const delta = res.events().at(-1)!;
    expect(delta.event).toBe("delta");
    expect(delta.data.health).toMatchObject([{ d: "00000001", p: [0.3, 0.4, 0.5] }]);
    expect((delta.data.alerts as unknown[]).length).toBe(1);
    timers.advance(500); // nothing changed: no delta
    expect(res.events()).toHaveLength(2);
    timers.advance(250);
    await settle();
    expect(res.events().at(-1)!.event).toBe("stats");
    expect(h.clients).toBe(1);
  });

  it("behavior: a slow page is skipped (counted) while its buffer is full, then resynced with init after drain", async () => {
    const { feed, timers, h, connect } = hub({ maxBufferedBytes: 1000 });
    const { res } = connect();
    await settle();
    res.writableLength = 5000; // the socket is not draining
    feed.observe(health(1, 0.1));
    timers.advance(250);
    feed.observe(health(1, 0.2));
    timers.advance(250);
    expect(res.events().map((e) => e.event)).toEqual(["init"]);
    expect(h.skipped).toBe(2);
    res.writableLength = 0;
    res.emit("drain");
    await settle();
    expect(res.events().map((e) => e.event)).toEqual(["init", "init"]);
    feed.observe(health(1, 0.3));
    timers.advance(250);
    expect(res.events().at(-1)!.event).toBe("delta");
  });

  it("behavior: updates broadcast while a new page waits for its init are not counted as skipped (the page is not slow: its init holds them)", async () => {
    const { feed, timers, h, connect } = hub();
    const { res } = connect(); // init pending (asynchronous)
    feed.observe(health(1, 0.1));
    timers.advance(250); // a delta goes out before the init is written
    expect(h.skipped).toBe(0);
    await settle();
    expect(res.events().map((e) => e.event)).toEqual(["init"]);
    expect((res.events()[0]!.data.health as unknown[]).length).toBe(1);
  });

  it("behavior: a page whose connection does not drain for maxStallMs is disconnected (counted), freeing its place", async () => {
    const { feed, timers, h, connect } = hub({ maxBufferedBytes: 1000, maxStallMs: 30_000, maxClients: 1 });
    let now = 1_000_000;
    vi.spyOn(Date, "now").mockImplementation(() => now);
    try {
      const { res } = connect();
      await settle();
      res.writableLength = 5000; // never drains
      feed.observe(health(1, 0.1));
      timers.advance(250); // stalls here
      expect(connect().code).toBe(503); // it holds the only place
      now += 30_000;
      feed.observe(health(1, 0.2));
      timers.advance(250);
      expect([res.ended, h.evicted, h.clients]).toEqual([false, 0, 1]); // not longer than the limit yet
      now += 1;
      feed.observe(health(1, 0.3));
      timers.advance(250);
      expect([res.ended, h.evicted, h.clients]).toEqual([true, 1, 0]);
      expect(connect().code).toBe(200);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("behavior: at most maxClients pages (503 beyond); a closed page is removed; stop ends every stream", async () => {
    const { h, connect } = hub({ maxClients: 2 });
    const a = connect();
    connect();
    const c = connect();
    expect(c.code).toBe(503);
    expect(c.res.status).toBe(503);
    expect(h.clients).toBe(2);
    a.req.emit("close");
    expect(h.clients).toBe(1);
    const d = connect();
    expect(d.code).toBe(200);
    h.stop();
    expect(d.res.ended).toBe(true);
    expect(h.clients).toBe(0);
  });
});
