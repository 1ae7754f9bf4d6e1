/**
 * `npm run bench -- http [--devices N] [--rate HZ] [--seconds S]`
 * The HTTP endpoint under a fleet: a gateway in this process with N simulated rotating machines
 * (default 1,000 at 5 frames/s) publishing over MQTT, and the same with 10 machines as the
 * baseline, measured in the same run:
 * 1. scrape cost: `/metrics` over HTTP (median of 20 scrapes; includes waiting for the event
 *    loop, busy with the fleet's frames), the exposition's render time alone, and its size;
 * 2. the live page in headless Chromium (Debian's, /usr/bin/chromium): frame intervals from
 *    requestAnimationFrame while updates stream in (S seconds at the top of the page, then S
 *    seconds scrolling through the device table), long tasks (> 50 ms) and the SSE bytes per
 *    second one page receives.
 * Gateway, simulator and browser share the machine's cores, so the page's figures include that
 * contention. Last line: one JSON object.
 */
import type { Page } from "playwright-core";
import { launchChromium } from "../test/helpers/observe.ts";
import { startFleet, type Fleet } from "../test/helpers/fleet.ts";
import { benchOptions, int, positive } from "./lib/options.ts";

const {
  devices: DEVICES,
  rate: RATE,
  seconds: SECONDS,
} = benchOptions(
  import.meta.url,
  { devices: { type: "string" }, rate: { type: "string" }, seconds: { type: "string" } },
  (a) => ({
    devices: int("devices", a.devices, 1000, 1),
    rate: positive("rate", a.rate, 5),
    seconds: positive("seconds", a.seconds, 15),
  }),
);
const BASE_DEVICES = 10;

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
}
const median = (xs: number[]) => pct(xs, 0.5);
const r1 = (x: number) => Math.round(x * 10) / 10;

async function waitForHealth(f: Fleet, devices: number): Promise<void> {
  // Health starts after a device's first 64-frame window; wait until most devices have some.
  const end = Date.now() + 120_000;
  while (
    (f.rt.http!.feed.devices.size < devices * 0.9 || f.rt.ingest.counters.devices.size < devices) &&
    Date.now() < end
  )
    await new Promise((r) => setTimeout(r, 250));
}

async function scrapeCost(
  f: Fleet,
): Promise<{ ms: number; renderMs: number; bytes: number; series: number }> {
  const times: number[] = [];
  const render: number[] = [];
  let text = "";
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    text = await (await fetch(`${f.url}/metrics`)).text();
    times.push(performance.now() - t0);
    // The gateway's own cost: building the exposition, without HTTP and without waiting for an
    // event loop busy with the fleet's frames (which the HTTP figure includes).
    const t1 = performance.now();
    await f.rt.http!.metrics.render();
    render.push(performance.now() - t1);
  }
  return {
    ms: median(times),
    renderMs: median(render),
    bytes: text.length,
    series: text.split("\n").filter((l) => l && !l.startsWith("#")).length,
  };
}

async function sseRate(url: string, ms: number): Promise<number> {
  const ac = new AbortController();
  const res = await fetch(`${url}/events`, { signal: ac.signal });
  const reader = res.body!.getReader();
  let bytes = 0;
  let initSeen = false;
  const t0 = performance.now();
  let start = t0;
  setTimeout(() => ac.abort(), ms + 5000).unref();
  try {
    while (performance.now() - start < ms) {
      const { value, done } = await reader.read();
      if (done) break;
      const chunk = new TextDecoder().decode(value);
      if (!initSeen) {
        // Count from the first message after init (init is a one-off snapshot).
        if (chunk.includes("event: init")) initSeen = true;
        start = performance.now();
        continue;
      }
      bytes += value.byteLength;
    }
  } finally {
    ac.abort();
  }
  return bytes / ((performance.now() - start) / 1000);
}

/** The page-side measurement (serialised by playwright, runs in the page). */
interface W {
  performance: { now(): number };
  requestAnimationFrame(f: (t: number) => void): void;
  scrollBy(x: number, y: number): void;
  PerformanceObserver: new (cb: (l: { getEntries(): Array<{ duration: number }> }) => void) => {
    observe(o: { type: string }): void;
    disconnect(): void;
  };
}

async function frames(page: Page, ms: number, scroll: boolean) {
  return page.evaluate(
    async ({ ms, scroll }) => {
      const w = globalThis as unknown as W;
      const intervals: number[] = [];
      let longTasks = 0;
      let longMs = 0;
      const po = new w.PerformanceObserver((l) => {
        for (const e of l.getEntries()) {
          longTasks++;
          longMs += e.duration;
        }
      });
      po.observe({ type: "longtask" });
      // A loop of awaited frames, no named inner functions: tsx's keepNames would wrap them in a
      // __name() helper that does not exist in the page.
      let last = w.performance.now();
      const end = last + ms;
      while (last < end) {
        const t = await new Promise<number>((res) => w.requestAnimationFrame(res));
        intervals.push(t - last);
        last = t;
        if (scroll) w.scrollBy(0, 60);
      }
      po.disconnect();
      return { intervals: intervals.slice(1), longTasks, longMs };
    },
    { ms, scroll },
  );
}

interface PageFigures {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  fps: number;
  longTasks: number;
  longMs: number;
}

function figures(r: { intervals: number[]; longTasks: number; longMs: number }, ms: number): PageFigures {
  return {
    p50: r1(pct(r.intervals, 0.5)),
    p95: r1(pct(r.intervals, 0.95)),
    p99: r1(pct(r.intervals, 0.99)),
    max: r1(Math.max(0, ...r.intervals)),
    fps: r1(r.intervals.length / (ms / 1000)),
    longTasks: r.longTasks,
    longMs: Math.round(r.longMs),
  };
}

async function run(devices: number) {
  const fleet = await startFleet({ devices, rate: RATE, durationS: 120 + SECONDS * 4 });
  try {
    await waitForHealth(fleet, devices);
    const scrape = await scrapeCost(fleet);
    const sse = await sseRate(fleet.url, 5000);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      const t0 = performance.now();
      await page.goto(`${fleet.url}/`);
      await page.waitForFunction(
        (n) =>
          (
            globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
          ).document.querySelectorAll("#device-rows .dev").length >= n,
        devices,
        { timeout: 60_000 },
      );
      const loadMs = performance.now() - t0;
      const top = figures(await frames(page, SECONDS * 1000, false), SECONDS * 1000);
      const scrolling = figures(await frames(page, SECONDS * 1000, true), SECONDS * 1000);
      if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
      return { devices, scrape, sseBytesPerSec: Math.round(sse), loadMs: Math.round(loadMs), top, scrolling };
    } finally {
      await browser.close();
    }
  } finally {
    await fleet.stop();
  }
}

const base = await run(BASE_DEVICES);
const big = await run(DEVICES);

const rows: Array<[string, string, string]> = [
  ["devices", `${BASE_DEVICES}`, `${DEVICES}`],
  ["/metrics scrape over HTTP (median of 20)", `${r1(base.scrape.ms)} ms`, `${r1(big.scrape.ms)} ms`],
  [
    "/metrics render in the gateway (median)",
    `${r1(base.scrape.renderMs)} ms`,
    `${r1(big.scrape.renderMs)} ms`,
  ],
  [
    "/metrics size",
    `${(base.scrape.bytes / 1024).toFixed(0)} KiB, ${base.scrape.series} series`,
    `${(big.scrape.bytes / 1024).toFixed(0)} KiB, ${big.scrape.series} series`,
  ],
  [
    "SSE to one page",
    `${(base.sseBytesPerSec / 1024).toFixed(1)} KiB/s`,
    `${(big.sseBytesPerSec / 1024).toFixed(1)} KiB/s`,
  ],
  ["page load to all rows", `${base.loadMs} ms`, `${big.loadMs} ms`],
];
for (const [k, f] of [
  ["top of page", "top"],
  ["scrolling the table", "scrolling"],
] as const) {
  const b = base[f];
  const g = big[f];
  rows.push([
    `${k}: frame p50 / p95 / p99`,
    `${b.p50} / ${b.p95} / ${b.p99} ms`,
    `${g.p50} / ${g.p95} / ${g.p99} ms`,
  ]);
  rows.push([`${k}: longest frame, fps`, `${b.max} ms, ${b.fps}`, `${g.max} ms, ${g.fps}`]);
  rows.push([
    `${k}: long tasks (> 50 ms)`,
    `${b.longTasks} (${b.longMs} ms)`,
    `${g.longTasks} (${g.longMs} ms)`,
  ]);
}
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(
  `http benchmark (${RATE} frames/s per device, ${SECONDS} s per page phase; baseline ${BASE_DEVICES} devices)`,
);
for (const [k, x, y] of rows) console.log(`  ${k.padEnd(w0)}  ${x.padStart(w1)}  ${y}`);
const p95Ratio = big.top.p95 / base.top.p95;
console.log(
  `  frame p95 ratio ${DEVICES}/${BASE_DEVICES} devices: ${p95Ratio.toFixed(2)} (top), ${(big.scrolling.p95 / base.scrolling.p95).toFixed(2)} (scrolling)`,
);
console.log(
  JSON.stringify({
    bench: "http",
    rate: RATE,
    baseline: base,
    fleet: big,
    frameP95Ratio: Number(p95Ratio.toFixed(3)),
    scrapeMsRatio: Number((big.scrape.ms / base.scrape.ms).toFixed(3)),
  }),
);
