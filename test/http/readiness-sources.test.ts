/**
 * A source that does not reach its input (the external broker down, a serial port not open) is a
 * /readyz warning and `vigil_source_connected` 0: degraded, still ready (other sources take frames).
 */
import { describe, expect, it } from "vitest";
import { GatewayMetrics } from "../../gateway/src/http/metrics.ts";
import { LiveFeed } from "../../gateway/src/http/live.ts";
import { readiness } from "../../gateway/src/http/readiness.ts";
import { parseExposition, sample } from "./exposition.ts";
import { FakeSource, idleHttp } from "./fake-source.ts";

describe("readiness and metrics: a source that is not connected", () => {
  it("behavior: a warning naming it (still ready) and vigil_source_connected 0 while it is down; 1 and no warning once up; none for the embedded broker", async () => {
    let up = false;
    const src = new FakeSource();
    src.sources.push({
      name: "mqtt:mqtt://broker:1883",
      start: async () => {},
      stop: async () => {},
      stats: () => ({ connects: 0, offline: 3 }),
      connected: () => up,
    });
    const metrics = new GatewayMetrics({
      source: src,
      feed: new LiveFeed(),
      version: "9.9.9",
      http: idleHttp,
    });
    const connected = async (): Promise<number> =>
      sample(parseExposition(await metrics.render()), "vigil_source_connected", {
        source: "mqtt:mqtt://broker:1883",
      });
    const r = readiness(src);
    expect(r.ready).toBe(true);
    expect(r.warnings.filter((w) => w.check === "sources")).toEqual([
      {
        check: "sources",
        reason: "disconnected",
        detail:
          "mqtt:mqtt://broker:1883 is not connected; retrying (frames from it wait at the device or broker)",
      },
    ]);
    expect(await connected()).toBe(0);
    up = true;
    expect(readiness(src).warnings.filter((w) => w.check === "sources")).toEqual([]);
    expect(await connected()).toBe(1);
    // The embedded broker has no connection of its own to lose: no sample.
    const fams = parseExposition(await metrics.render());
    expect(fams.get("vigil_source_connected")!.samples.map((s) => s.labels.source)).toEqual([
      "mqtt:mqtt://broker:1883",
    ]);
  });
});
