/**
 * A model output of NaN or ±Inf on the live page, in headless Chromium from Debian: the endpoint
 * sends it as null (gateway/src/http/README.md, `/events`), the page shows "–" for it (never a
 * number: 0 read as RUL 0) and leaves a gap in the sparkline, without a script error, whether the
 * value arrives in the page's `init` or in a `delta`.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { HttpServer } from "../../gateway/src/http/server.ts";
import { FakeSource } from "../http/fake-source.ts";
import { health } from "../http/events.ts";
import { launchChromium } from "../helpers/observe.ts";

let server: HttpServer;
let browser: Browser;

beforeAll(async () => {
  server = new HttpServer({ source: new FakeSource(), port: 0 });
  await server.start();
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** The text of device `id`'s health cell (the row's third cell), or null before the row exists. */
function healthText(page: Page, id: string): Promise<string | null> {
  return page.evaluate((d) => {
    const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<unknown> } })
      .document;
    for (const row of doc.querySelectorAll("div.dev") as Iterable<{
      children: ArrayLike<{ textContent: string | null }>;
    }>)
      if (row.children[0]?.textContent === d) return row.children[2]?.textContent ?? null;
    return null;
  }, id);
}

describe("the live page and outputs that are not finite", () => {
  it("behavior: a NaN or ±Inf output shows as '–' (init and delta), finite ones as numbers, with no script error", async () => {
    // Before the page connects: its init carries a sparkline with a NaN in it and a NaN latest value.
    for (const v of [0.42, NaN, 0.5, NaN]) server.feed.observe(health(1, v));
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    try {
      await page.goto(`http://127.0.0.1:${server.port}/`);
      await vi.waitFor(async () => expect(await healthText(page, "00000001")).toBe("–"), {
        timeout: 30_000,
        interval: 100,
      });
      // Deltas: a finite value shows as a number (p_fail has no unit on this fake model: "0.30").
      server.feed.observe(health(1, 0.3));
      await vi.waitFor(async () => expect(await healthText(page, "00000001")).toMatch(/0\.30/), {
        timeout: 30_000,
        interval: 100,
      });
      server.feed.observe(health(1, Infinity));
      await vi.waitFor(async () => expect(await healthText(page, "00000001")).toBe("–"), {
        timeout: 30_000,
        interval: 100,
      });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 120_000);
});
