/**
 * The HTTP endpoint during a demo-sized run (`vigil demo`: anvil, registry, 6 rotating machines
 * and 3 C-MAPSS engines with faults, sealing and anchoring), observed by the real tools an
 * operator uses: Prometheus from Debian scraping /metrics (and `promtool check metrics`), the
 * shipped Grafana dashboard's queries run against it, and the live page in headless Chromium
 * from Debian. Debian packages: prometheus, chromium (.ci/run installs them).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { launchChromium, prometheus, startDemo, type Demo, type Prometheus } from "../helpers/observe.ts";
import { requireTool, which } from "../helpers/procs.ts";
import { concrete, dashboardQueries } from "../http/grafana.ts";

// 6 rotating machines, 3 C-MAPSS engines, and the MCU that receives firmware when socat is there.
const DEMO_DEVICES = 6 + 3 + (which("socat") ? 1 : 0);
let demo: Demo;
let prom: Prometheus;
let browser: Browser;

beforeAll(async () => {
  requireTool("promtool", "prometheus");
  demo = await startDemo(["--duration", "45"]);
  prom = await prometheus(new URL(demo.url).host, [resolve("hardware/prometheus/vigil-alerts.yml")]);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await prom?.stop();
  // The demo stops its own anvil: let it finish its run, anchoring and receipt check.
  if (demo) expect(await demo.exited, demo.output()).toBe(0);
}, 120_000);

const num = (v: Array<{ value: [number, string] }>, i = 0) => Number(v[i]?.value[1]);

describe("Prometheus scraping the demo", () => {
  it("behavior: the target is up and PromQL returns the demo's series", async () => {
    await vi.waitFor(
      async () => {
        // On failure, say why Prometheus cannot scrape (its target's last error).
        const targets = (await (await fetch(`${prom.url}/api/v1/targets`)).json()) as {
          data: { activeTargets: Array<{ health: string; lastError: string }> };
        };
        expect(
          num(await prom.query('up{job="vigil"}')),
          `${JSON.stringify(targets.data.activeTargets)}\n${demo.proc.exitCode === null ? "" : `demo exited ${demo.proc.exitCode}:\n${demo.output().slice(-2000)}`}`,
        ).toBe(1);
        expect(num(await prom.query("vigil_ingest_devices"))).toBe(DEMO_DEVICES);
        expect(num(await prom.query("rate(vigil_ingest_frames_accepted_total[5s])"))).toBeGreaterThan(0);
      },
      { timeout: 60_000, interval: 500 },
    );
    const models = (await prom.query('vigil_model_info{role="live"}')).map((r) => r.metric.model);
    expect(models).toEqual(expect.arrayContaining(["rotating-v1-health", "cmapss-fd001-rul"]));
    await vi.waitFor(
      async () => {
        const reasons = (await prom.query("sum by (reason) (vigil_ingest_frames_rejected_total)")).map(
          (r) => r.metric.reason,
        );
        expect(reasons).toContain("BAD_CRC"); // the demo corrupts 1 % of frames
        expect(num(await prom.query("vigil_batches_anchored_total"))).toBeGreaterThan(0);
        expect(num(await prom.query("sum(vigil_alerts_total)"))).toBeGreaterThan(0);
      },
      { timeout: 60_000, interval: 500 },
    );
    const p99 = num(
      await prom.query("histogram_quantile(0.99, rate(vigil_inference_frame_to_result_seconds_bucket[10s]))"),
    );
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThan(60);
  });

  it("behavior: promtool check metrics passes on the gateway's exposition", async () => {
    const text = await (await fetch(`${demo.url}/metrics`)).text();
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("behavior: the shipped alerting rules evaluate without error, and no critical alert is pending or firing", async () => {
    interface Rule {
      name: string;
      health: string;
      lastError?: string;
      lastEvaluation: string;
    }
    await vi.waitFor(
      async () => {
        const body = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as {
          data: { groups: Array<{ name: string; rules: Rule[] }> };
        };
        const rules = body.data.groups.flatMap((g) => g.rules);
        // Every rule of the shipped file (counted from it).
        const shipped = readFileSync("hardware/prometheus/vigil-alerts.yml", "utf8").match(
          /^\s+- alert: /gm,
        )!;
        expect(rules.length).toBe(shipped.length);
        for (const r of rules) {
          expect(r.lastEvaluation, r.name).not.toMatch(/^0001-/); // evaluated at least once
          expect({ name: r.name, health: r.health, error: r.lastError ?? "" }).toEqual({
            name: r.name,
            health: "ok",
            error: "",
          });
        }
      },
      { timeout: 20_000, interval: 500 },
    );
    const alerts = (await (await fetch(`${prom.url}/api/v1/alerts`)).json()) as {
      data: { alerts: Array<{ labels: Record<string, string>; state: string }> };
    };
    expect(alerts.data.alerts.filter((a) => a.labels.severity === "critical")).toEqual([]);
  });

  it("behavior: every Grafana dashboard query is valid PromQL and returns the demo's data", async () => {
    // May be empty in the demo: no fees reported yet, the registry watch's age before its first
    // refresh, no device ERROR frames, no back-pressure, no refused release; devices in sensor fault only when the
    // data-quality stage flags one.
    const expectedEmpty =
      /gas_used|fee_wei|registry_cache|device_error_frames|frames_shed|update_rejected|> 0\)/;
    const empty: string[] = [];
    for (const q of dashboardQueries()) {
      if (q.expr.startsWith("label_values(")) {
        // A Grafana function, not PromQL: the label it lists must exist.
        const [, metric, label] = /^label_values\((\w+), (\w+)\)$/.exec(q.expr)!;
        expect((await prom.query(metric!))[0]?.metric[label!], q.expr).toBeTruthy();
        continue;
      }
      await prom.query(concrete(q.expr)); // throws on invalid PromQL
      if (expectedEmpty.test(q.expr)) continue;
      // A counter that appeared a moment ago needs a second scrape before rate()/increase() see it.
      await vi
        .waitFor(async () => expect((await prom.query(concrete(q.expr))).length).toBeGreaterThan(0), {
          timeout: 10_000,
          interval: 500,
        })
        .catch(() => empty.push(`${q.panel}: ${concrete(q.expr)}`));
    }
    expect(empty, empty.join("\n")).toEqual([]);
  });
});

/**
 * The few DOM shapes the page-side checks use (tsconfig has no DOM lib). Page-side functions are
 * serialised by playwright and run in the page (a string would be eval, which the page's
 * Content-Security-Policy rightly refuses).
 */
interface El {
  textContent: string | null;
  title: string;
  width: number;
  scrollIntoView(o: { block: "start" | "end" }): void;
  height: number;
  toDataURL(): string;
}
interface Doc {
  querySelectorAll(sel: string): ArrayLike<El> & Iterable<El>;
  querySelector(sel: string): El | null;
  createElement(tag: "canvas"): El;
}
/** `globalThis` in the page; page-side functions cannot call helpers of this file (no closures cross). */
type Page$ = { document: Doc };

/** True in the page once some device sparkline canvas has a painted pixel (self-contained: runs in the page). */
function sparklineDrawn(): boolean {
  const doc = (globalThis as unknown as Page$).document;
  // Only rows on screen hold a canvas (app.js): keep the device table in view while alerts grow above it.
  doc.querySelector("#devices")?.scrollIntoView({ block: "start" });
  // Compared as PNGs with a blank canvas of the same size: repeated getImageData readbacks make
  // Chromium log a console warning, which this test counts as a page problem.
  for (const c of doc.querySelectorAll("#devices canvas")) {
    const blank = doc.createElement("canvas");
    blank.width = c.width;
    blank.height = c.height;
    if (c.toDataURL() !== blank.toDataURL()) return true;
  }
  return false;
}

/** Console errors, page errors and failed requests of a page. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    // The event stream is cut when the page closes; anything else failing is a defect.
    if (!r.url().endsWith("/events")) problems.push(`request failed: ${r.url()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return problems;
}

describe("the live page in Chromium during the demo", () => {
  it("behavior: loads, shows the demo's devices, updates live, shows alerts with leaf hashes and anchored batches; no console errors", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems = watch(page);
    await page.goto(`${demo.url}/`);
    await page.waitForFunction(
      (n) => (globalThis as unknown as Page$).document.querySelectorAll("#device-rows .dev").length === n,
      DEMO_DEVICES,
      {
        timeout: 30_000,
      },
    );
    expect(await page.textContent("#ready")).toBe("ready");
    expect(await page.textContent("#gw-name")).toBe("demo-gw");
    const ids = await page.$$eval("#device-rows .dev > span:first-child", (tds) =>
      tds.map((t) => t.textContent),
    );
    expect(ids).toEqual([
      "00000001",
      "00000002",
      "00000003",
      "00000004",
      "00000005",
      "00000006",
      "00001000",
      "00001001",
      "00001002",
      ...(which("socat") ? ["00002000"] : []), // the MCU of the firmware update
    ]);
    // Live: the accepted total moves, and sparklines are drawn from health deltas.
    const accepted = async () =>
      Number(/accepted ([\d,]+)/.exec((await page.textContent("#totals-line"))!)![1]!.replaceAll(",", ""));
    const before = await accepted();
    await page.waitForFunction(
      (b) =>
        Number(
          /accepted ([\d,]+)/
            .exec((globalThis as unknown as Page$).document.querySelector("#totals-line")!.textContent!)![1]!
            .replaceAll(",", ""),
        ) > b,
      before,
      { timeout: 15_000 },
    );
    await page.waitForFunction(sparklineDrawn, undefined, { timeout: 60_000 });
    expect(await accepted()).toBeGreaterThan(before);
    // Alerts with their receipts' leaf hashes, and batches with their anchor transactions.
    await page.waitForSelector("#alerts tbody tr", { timeout: 60_000 });
    const leaf = await page.$eval("#alerts tbody tr td.leaf", (td) => td.getAttribute("title"));
    expect(leaf).toMatch(/^0x[0-9a-f]{64}$/);
    await page.waitForFunction(
      () =>
        [...(globalThis as unknown as Page$).document.querySelectorAll("#batches tbody td.leaf")].some((td) =>
          /^0x[0-9a-f]{64}$/.test(td.title),
        ),
      undefined,
      { timeout: 60_000 },
    );
    expect(await page.textContent("#models tbody")).toContain("rotating-v1-health");
    // The live model's data-quality view of each device (sensor faults, withheld windows).
    const qualityCells = (): Promise<string[]> =>
      page.$$eval("#device-rows .dev", (rows) =>
        rows.map((r) => `${r.children[0]?.textContent}: ${r.children[10]?.textContent}`),
      );
    // The page renders only rows on screen (app.js), and the active-alerts table above the
    // devices grows as alerts arrive, so the last rows can sit below the fold (CI saw the last two
    // cells at "–"): every poll scrolls the last row into view (the ten rows fit on screen
    // together) before reading the cells.
    await page
      .waitForFunction(
        () => {
          const doc = (globalThis as unknown as Page$).document;
          doc.querySelector("#device-rows .dev:last-child")?.scrollIntoView({ block: "end" });
          return [...doc.querySelectorAll("#device-rows .dev > span:nth-child(11)")].every((s) =>
            /^(ok|\d+ sensor faults?|[\d,]+ withheld)$/.test(s.textContent ?? ""),
          );
        },
        undefined,
        { timeout: 30_000 },
      )
      .catch(async (e: unknown) => {
        // Say which device's cell never showed a verdict, and what it showed instead.
        throw new Error(`${(e as Error).message}\ndata-quality cells: ${(await qualityCells()).join("; ")}`, {
          cause: e,
        });
      });
    const shot =
      process.env.VIGIL_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), "vigil-page-")), "live-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });
});
