import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GatewayMetrics } from "../../gateway/src/http/metrics.ts";
import { LiveFeed } from "../../gateway/src/http/live.ts";
import { parseExposition } from "./exposition.ts";
import { FakeSource, idleHttp } from "./fake-source.ts";
import { DASHBOARD, dashboardQueries, metricNames } from "./grafana.ts";

describe("Grafana dashboard", () => {
  it("behavior: every metric the dashboard queries exists in the exposition (with the right type for histograms)", async () => {
    const m = new GatewayMetrics({
      source: new FakeSource(),
      feed: new LiveFeed(),
      version: "0",
      http: idleHttp,
    });
    const fams = parseExposition(await m.render());
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(30);
    const used = new Set<string>();
    for (const q of queries) {
      const names = metricNames(q.expr);
      expect(names.length, `${q.panel}: ${q.expr}`).toBeGreaterThan(0);
      for (const n of names) {
        used.add(n);
        expect(fams.has(n), `${q.panel}: ${n} is not exposed`).toBe(true);
        if (q.expr.includes(`${n}_bucket`)) expect(fams.get(n)!.type).toBe("histogram");
      }
    }
    // The dashboard covers each area the issue names.
    for (const n of [
      "vigil_ingest_frames_rejected_total",
      "vigil_device_error_frames_total",
      "vigil_inference_frame_to_result_seconds",
      "vigil_inference_windows_skipped_total",
      "vigil_alerts_total",
      "vigil_batches_anchored_total",
      "vigil_anchor_lag_seconds",
      "vigil_anchor_gas_used_total",
      "vigil_model_info",
      "vigil_store_live_bytes",
      "vigil_disk_free_bytes",
      "vigil_registry_cache_age_seconds",
      "vigil_update_rejected_total",
      "process_cpu_seconds_total",
    ])
      expect(used, n).toContain(n);
  });

  it("behavior: every panel uses the dashboard's data source variable and filters by $instance", () => {
    const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
      panels: Array<{
        type: string;
        title: string;
        datasource?: { uid: string };
        targets?: Array<{ expr: string }>;
      }>;
    };
    for (const p of d.panels.filter((x) => x.type !== "row")) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      for (const t of p.targets ?? [])
        for (const sel of t.expr.match(/\b(?:vigil|process|nodejs)_[a-z0-9_]+(\{[^}]*\})?/g) ?? [])
          expect(sel, `${p.title}: ${t.expr}`).toContain('instance=~"$instance"');
    }
  });
});
