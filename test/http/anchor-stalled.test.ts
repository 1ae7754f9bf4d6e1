/**
 * A stuck anchor transaction, or paused anchoring, is visible to an operator: a /readyz warning and
 * vigil_anchor_stalled or vigil_anchor_paused.
 */
import { describe, expect, it } from "vitest";
import { PAUSE_REASONS } from "../../gateway/src/anchor/service.ts";
import { ANCHOR_PAUSE_REASONS, GatewayMetrics } from "../../gateway/src/http/metrics.ts";
import { LiveFeed } from "../../gateway/src/http/live.ts";
import { readiness } from "../../gateway/src/http/readiness.ts";
import { parseExposition, sample } from "./exposition.ts";
import { FakeSource, idleHttp } from "./fake-source.ts";

const status = (
  stalled: { reason: string; message: string } | null,
  paused: { reason: string; message: string } | null = null,
) => ({
  anchoredThrough: 1,
  backlog: 1,
  failures: 0,
  lastError: paused ? { code: "CHAIN_INSUFFICIENT_FUNDS", message: paused.message } : null,
  stalled,
  paused,
});

async function stalledGauge(src: FakeSource) {
  const m = new GatewayMetrics({
    source: src,
    feed: new LiveFeed(),
    version: "1",
    nowUs: () => 1_764_000_000_000_000,
    http: idleHttp,
  });
  return parseExposition(await m.render());
}

describe("a stalled anchor transaction", () => {
  it("behavior: is a readiness warning (still ready) naming the cause, and vigil_anchor_stalled is 1 for its reason only", async () => {
    const src = new FakeSource();
    const message = "no new block for 121 s (block 9) while anchor transaction 0xee waits: …";
    src.anchorStatus = status({ reason: "no-blocks", message });
    const r = readiness(src);
    expect(r.ready).toBe(true);
    expect(r.warnings.filter((w) => w.check === "anchor")).toEqual([
      { check: "anchor", reason: "stalled-no-blocks", detail: message },
    ]);
    const f = await stalledGauge(src);
    expect(sample(f, "vigil_anchor_stalled", { reason: "no-blocks" })).toBe(1);
    expect(sample(f, "vigil_anchor_stalled", { reason: "fee-cap" })).toBe(0);
  });

  it("behavior: nothing stalled is no warning and 0 for every reason; without anchoring the gauge is absent", async () => {
    const src = new FakeSource();
    src.anchorStatus = status(null);
    expect(readiness(src).warnings.filter((w) => w.check === "anchor")).toEqual([]);
    const f = await stalledGauge(src);
    expect(sample(f, "vigil_anchor_stalled", { reason: "no-blocks" })).toBe(0);
    expect(sample(f, "vigil_anchor_stalled", { reason: "fee-cap" })).toBe(0);
    src.anchorStatus = undefined;
    expect((await stalledGauge(src)).get("vigil_anchor_stalled")!.samples).toEqual([]);
  });
});

describe("paused anchoring", () => {
  it("behavior: is a readiness warning (still ready) naming the reason, and vigil_anchor_paused is 1 for its reason only", async () => {
    const src = new FakeSource();
    const message =
      "the sending account 0xaa cannot pay for anchors: fund it; batches stay sealed in the store";
    // A pause is not a failure (failures 0), so the failure warning alone never showed it.
    src.anchorStatus = status(null, { reason: "insufficient-funds", message });
    const r = readiness(src);
    expect(r.ready).toBe(true);
    expect(r.warnings.filter((w) => w.check === "anchor")).toEqual([
      { check: "anchor", reason: "paused-insufficient-funds", detail: message },
    ]);
    const f = await stalledGauge(src);
    for (const reason of ANCHOR_PAUSE_REASONS)
      expect(sample(f, "vigil_anchor_paused", { reason }), reason).toBe(
        reason === "insufficient-funds" ? 1 : 0,
      );
    src.anchorStatus = status(null);
    expect(readiness(src).warnings.filter((w) => w.check === "anchor")).toEqual([]);
    const g = await stalledGauge(src);
    for (const reason of ANCHOR_PAUSE_REASONS) expect(sample(g, "vigil_anchor_paused", { reason })).toBe(0);
    src.anchorStatus = undefined;
    expect((await stalledGauge(src)).get("vigil_anchor_paused")!.samples).toEqual([]);
  });

  it("doc: the gauge's reasons are the anchor service's pause reasons", () => {
    expect([...ANCHOR_PAUSE_REASONS]).toEqual([...PAUSE_REASONS]);
  });
});
