/** The shipped Grafana dashboard (hardware/grafana/vigil.json): its PromQL queries and the metrics they name. */
import { readFileSync } from "node:fs";

export const DASHBOARD = "hardware/grafana/vigil.json";

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

/** Every query of the dashboard: panel targets and template-variable queries. */
export function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; query?: { query?: string } | string }> };
  };
  const out: Array<{ panel: string; expr: string }> = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? "?", expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) {
    const q = typeof v.query === "string" ? undefined : v.query?.query;
    if (q?.startsWith("label_values(")) out.push({ panel: `$${v.name}`, expr: q });
  }
  return out;
}

/** Metric names in a query (vigil_, process_, nodejs_), histogram sample suffixes folded to the family. */
export function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:vigil|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set(names.map((n) => n.replace(/_(bucket|sum|count)$/, "")))];
}

/** A query with the dashboard's variables replaced for a single gateway. */
export function concrete(expr: string): string {
  return expr.replaceAll("$instance", ".*");
}
