/**
 * The independent client (http-client.ts, written from gateway/src/http/README.md alone) against
 * the endpoint's time limits and the live page's bounds for slow pages, on a real `vigil start`:
 * "30 s for its whole request" and the 5 s idle close ("Limits"), and a page that stops reading
 * ("/events": skipped updates, a fresh `init` when it catches up, disconnected after 30 s without
 * draining). The documented limits are waited out, so the tests run concurrently on one gateway
 * (about a minute in all).
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, expect, it } from "vitest";
import { stop } from "../helpers/procs.ts";
import { spawnVigil, until } from "../helpers/vigil-child.ts";
import { ask, checkSlowPages, freshInitProblems, rawExchange, type Target } from "./http-client.ts";
import { startGateway, type Started } from "../helpers/http-gateway.ts";

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const p of children) await stop(p);
});

let gateway: Promise<Started> | undefined;
const loopback = async (): Promise<Target> => ({
  base: (await (gateway ??= startGateway(children, {}))).base,
});

/** Over 30 s, a body a byte a second: the request is never complete, the connection never idle. */
it.concurrent(
  "a request body still arriving at 30 s is cut off: 408, then closed",
  { timeout: 100_000 },
  async () => {
    const t = await loopback();
    const body = { length: 100_000, trickleMs: 1000 };
    const [post, events] = await Promise.all([
      rawExchange(t, { method: "POST", path: "/api/updates/check", body, waitMs: 60_000 }),
      rawExchange(t, { method: "GET", path: "/events", body, waitMs: 60_000 }),
    ]);
    // Answered at once without reading the body (updates are off: 409), then 408 at 30 s.
    expect(post.answers.map((a) => a.line)).toEqual([
      "HTTP/1.1 409 Conflict",
      "HTTP/1.1 408 Request Timeout",
    ]);
    expect(post.answers[0]!.ms).toBeLessThan(5000);
    expect(post.answers[1]!.ms).toBeGreaterThanOrEqual(25_000);
    expect(post.answers[1]!.ms).toBeLessThan(45_000);
    // A stream still being sent gets no 408: the connection is closed.
    expect(events.answers.map((a) => a.line)).toEqual(["HTTP/1.1 200 OK"]);
    for (const r of [post, events]) {
      expect(r.closedMs).toBeGreaterThanOrEqual(25_000);
      expect(r.closedMs).toBeLessThan(45_000);
    }
  },
);

it.concurrent("a connection idle for 5 s after an answer is closed", { timeout: 100_000 }, async () => {
  const t = await loopback();
  // A complete request on a keep-alive connection, and one whose announced body stops at once.
  const [done, stopped] = await Promise.all([
    rawExchange(t, { method: "GET", path: "/healthz", waitMs: 30_000 }),
    rawExchange(t, { method: "POST", path: "/api/updates/check", body: { length: 1000 }, waitMs: 30_000 }),
  ]);
  for (const [r, line] of [
    [done, "HTTP/1.1 200 OK"],
    [stopped, "HTTP/1.1 409 Conflict"],
  ] as const) {
    expect(r.answers.map((a) => a.line)).toEqual([line]);
    expect(r.closedMs! - r.answers[0]!.ms).toBeGreaterThanOrEqual(4000);
    expect(r.closedMs! - r.answers[0]!.ms).toBeLessThan(12_000);
  }
});

it.concurrent(
  "a page that stops reading is skipped, gets a fresh init when it reads again, else is disconnected after 30 s",
  { timeout: 110_000 },
  async () => {
    const t = await loopback();
    const g = await gateway!;
    // 2,000 devices (one frame each) make each `stats` message about 0.4 MB, so a page that does
    // not read fills the kernel's socket buffers (a few MB) and the 1 MiB in about 12 s.
    const sim = spawnVigil(children, ["sim", "--mqtt", g.mqtt, "--devices", "2000", "--rate", "1", "--frames", "1"]); // prettier-ignore
    await until(
      "2,000 devices in /api/summary",
      async () =>
        (JSON.parse((await ask(t, "/api/summary")).body) as { devices: unknown[] }).devices.length >= 2000,
      40_000,
      { everyMs: 500, detail: () => sim.log() },
    );
    const r = await checkSlowPages(t, { waitMs: 70_000 });
    expect(r.problems).toEqual([]);
    expect(r.evicted).toBe(1);
    // "has not drained for 30 s": measured from the first skipped update.
    expect(r.evictedAfterMs).toBeGreaterThanOrEqual(25_000);
    expect(r.evictedAfterMs).toBeLessThan(45_000);
    // A stalled page's updates are counted as skipped meanwhile (a `stats` a second).
    expect(r.skipped).toBeGreaterThan(20);
  },
);

it("the fresh-init check can fail", () => {
  const m = (event: string, t: number) => ({ at: t, event, data: { t } });
  const resumed = 20_000;
  expect(freshInitProblems([m("init", 0), m("stats", 1000), m("init", 21_000)], resumed)).toEqual([]);
  expect(freshInitProblems([m("init", 0), m("stats", 1000), m("stats", 2000)], resumed)).toEqual([
    "/events: 1 init, README says a fresh init when a slow page catches up",
  ]);
  // Queued rather than skipped: the updates go on up to the init.
  expect(freshInitProblems([m("init", 0), m("stats", 20_500), m("init", 21_000)], resumed)).toEqual([
    "/events: the update before the fresh init is 500 ms older, README says the updates between are skipped",
  ]);
  // An init made before the page read again is not fresh.
  expect(freshInitProblems([m("init", 0), m("stats", 1000), m("init", 9000)], resumed)).toContainEqual(
    expect.stringContaining("before the page read again"),
  );
});
