/**
 * The live page at 1,000 devices in headless Chromium from Debian: a gateway in this process with a
 * fleet of 1,000 simulated machines publishing over MQTT. What keeps the page from freezing is
 * checked as behaviour: every device gets a row, updates keep arriving, off-screen rows are not
 * touched while the stream runs (only what is on screen is rendered), a row scrolled into view
 * catches up, and the filter answers. The frame time itself is a measurement (`npm run bench --
 * http`, recorded in gateway/src/http/README.md), printed here for information, never asserted.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../helpers/fleet.ts";
import { launchChromium } from "../helpers/observe.ts";

const DEVICES = 1000;
let fleet: Fleet;
let browser: Browser;

beforeAll(async () => {
  // 2 frames/s per device: 2,000 frames/s into the gateway, health after 32 s of a device's data.
  fleet = await startFleet({ devices: DEVICES, rate: 2, durationS: 300 });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await fleet?.stop();
}, 120_000);

/** The DOM shapes the page-side functions use (tsconfig has no DOM lib). */
interface El {
  textContent: string | null;
  hidden: boolean;
  parentElement: El | null;
  closest(sel: string): El | null;
  scrollIntoView(o?: { block: string }): void;
  getBoundingClientRect(): { top: number; bottom: number };
}
interface Win {
  document: {
    querySelectorAll(sel: string): ArrayLike<El> & Iterable<El>;
    querySelector(sel: string): El | null;
  };
  innerHeight: number;
  scrollTo(x: number, y: number): void;
  performance: { now(): number };
  requestAnimationFrame(f: (t: number) => void): void;
  MutationObserver: new (cb: (m: Array<{ target: El }>) => void) => {
    observe(t: El, o: Record<string, boolean>): void;
    disconnect(): void;
  };
  __mutated?: Set<El>;
  __observer?: { disconnect(): void };
}

const rowCount = (page: Page) =>
  page.$$eval("#device-rows .dev", (rows) => rows.filter((r) => !(r as unknown as El).hidden).length);

describe("the live page with 1,000 devices", () => {
  it("behavior: a row per device, live updates, only on-screen rows rendered, rows catch up when scrolled to, the filter answers; no errors", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    await page.goto(`${fleet.url}/`);
    await page.waitForFunction(
      (n) => (globalThis as unknown as Win).document.querySelectorAll("#device-rows .dev").length === n,
      DEVICES,
      { timeout: 60_000 },
    );
    // Wait until the gateway has health for most devices, so updates stream for all of them.
    await page.waitForFunction(
      () =>
        [
          ...(globalThis as unknown as Win).document.querySelectorAll(
            "#device-rows .dev > span:nth-child(3)",
          ),
        ].some((s) => s.textContent !== "–"),
      undefined,
      { timeout: 90_000 },
    );
    await expect
      .poll(() => fleet.rt.http!.feed.devices.size, { timeout: 90_000, interval: 500 })
      .toBeGreaterThan(DEVICES * 0.9);
    // The fleet runs with attest off: the page must not say batches wait in an outbox.
    expect(await page.textContent("#anchor-status")).toBe(
      "Sealing is off (no chain.deployment, or attest.enabled false): frames are stored, not sealed.",
    );

    // Watch which rows the page touches for a few seconds of streaming at the top of the page.
    await page.evaluate(() => {
      const w = globalThis as unknown as Win;
      w.scrollTo(0, 0);
      const mutated = new Set<El>();
      const mo = new w.MutationObserver((ms) => {
        for (const m of ms) {
          const row = (m.target.parentElement ?? m.target).closest?.(".dev") ?? m.target.closest?.(".dev");
          if (row) mutated.add(row);
        }
      });
      mo.observe(w.document.querySelector("#device-rows")!, {
        subtree: true,
        childList: true,
        characterData: true,
        attributes: true,
      });
      w.__mutated = mutated;
      w.__observer = mo;
    });
    const accepted = async () =>
      Number(/accepted ([\d,]+)/.exec((await page.textContent("#totals-line"))!)![1]!.replaceAll(",", ""));
    const before = await accepted();
    await expect.poll(accepted, { timeout: 15_000, interval: 250 }).toBeGreaterThan(before);
    const healthBefore = fleet.rt.http!.feed.devices.size;
    // A few seconds of frame intervals (information only), which also lets updates stream.
    const intervals = await page.evaluate(async () => {
      const w = globalThis as unknown as Win;
      const out: number[] = [];
      let last = w.performance.now();
      const end = last + 4000;
      while (last < end) {
        const t = await new Promise<number>((res) => w.requestAnimationFrame(res));
        out.push(t - last);
        last = t;
      }
      return out.slice(1);
    });
    const touched = await page.evaluate(() => {
      const w = globalThis as unknown as Win;
      w.__observer!.disconnect();
      const rows = [...w.__mutated!];
      return {
        count: rows.length,
        offScreen: rows.filter((r) => {
          const b = r.getBoundingClientRect();
          // The page renders rows within 200 px of the viewport (IntersectionObserver rootMargin).
          return b.bottom < -250 || b.top > w.innerHeight + 250;
        }).length,
      };
    });
    const sorted = [...intervals].sort((a, b) => a - b);
    console.info(
      `1,000 devices, top of page: ${intervals.length} frames in 4 s, frame p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, ` +
        `max ${sorted.at(-1)?.toFixed(1)} ms; rows touched ${touched.count} of ${DEVICES}`,
    );
    expect(healthBefore).toBeGreaterThan(DEVICES * 0.9);
    expect(touched.count).toBeGreaterThan(0); // on-screen rows do update
    expect(touched.offScreen).toBe(0); // and nothing else is touched
    expect(touched.count).toBeLessThan(DEVICES / 4);
    // Only rows on screen hold a sparkline canvas (a thousand canvases made scrolling stutter).
    const canvases = await page.$$eval("#device-rows canvas", (c) => c.length);
    expect(canvases).toBeGreaterThan(0);
    expect(canvases).toBeLessThan(DEVICES / 4);

    // The last row was off screen the whole time, so it was never filled in; scrolled into view,
    // it catches up.
    const lastId = await page.$eval("#device-rows .dev:last-child > span:first-child", (s) => s.textContent);
    expect(await page.textContent("#device-rows .dev:last-child > span:nth-child(7)")).toBe("–");
    await page.$eval("#device-rows .dev:last-child", (r) =>
      (r as unknown as El).scrollIntoView({ block: "center" }),
    );
    await page.waitForFunction(
      () =>
        (globalThis as unknown as Win).document.querySelector(
          "#device-rows .dev:last-child > span:nth-child(7)",
        )!.textContent !== "–",
      undefined,
      { timeout: 10_000 },
    );

    // The filter answers while the stream runs.
    await page.fill("#filter", lastId!);
    await expect.poll(() => rowCount(page), { timeout: 10_000 }).toBe(1);
    await page.fill("#filter", "");
    await expect.poll(() => rowCount(page), { timeout: 10_000 }).toBe(DEVICES);

    await page.close();
    expect(problems).toEqual([]);
  });
});
