/**
 * The shipped Prometheus alerting rules (hardware/prometheus/vigil-alerts.yml) use only what the
 * gateway exposes: every `vigil_` metric a rule names is in the metrics table of
 * gateway/src/http/README.md (which test/http/metrics.test.ts holds to the exposition), with the
 * labels the rule selects or groups by. promtool checks and unit-tests the rules in interop
 * (test/interop/alert-rules.test.ts); the rules' README lists every alert.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../../gateway/src/config/config.ts";
import { documented } from "./exposition.ts";

const RULES = readFileSync("hardware/prometheus/vigil-alerts.yml", "utf8");
const README = readFileSync("hardware/prometheus/README.md", "utf8");

/** Each rule's name and PromQL expression (one line, or a `|` block). */
function rules(): { alert: string; expr: string }[] {
  const out: { alert: string; expr: string }[] = [];
  for (const m of RULES.matchAll(/- alert: (\w+)\n\s+expr: (\|\n((?:\s{10,}.*\n)+)|.*)/g))
    out.push({ alert: m[1]!, expr: (m[3] ?? m[2]!).trim() });
  return out;
}

/** A histogram's series name → its family (`…_bucket`, `_sum`, `_count`). */
const family = (name: string, doc: ReturnType<typeof documented>): string => {
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return doc.get(base)?.type === "histogram" ? base : name;
};

describe("hardware/prometheus/vigil-alerts.yml", () => {
  it("behavior: every metric and label a rule uses is one the gateway exposes", () => {
    const doc = documented();
    const all = rules();
    expect(all.length).toBeGreaterThanOrEqual(15);
    for (const { alert, expr } of all) {
      const names = [...expr.matchAll(/\b(vigil_[a-z0-9_]+)/g)].map((m) => family(m[1]!, doc));
      const known = new Set(["instance", "job"]);
      for (const name of names) {
        const d = doc.get(name);
        expect(d, `${alert}: ${name} is not in the gateway's metrics`).toBeDefined();
        for (const l of d!.labels) known.add(l);
        if (d!.type === "histogram") known.add("le");
      }
      for (const sel of expr.matchAll(/\b(vigil_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const name = family(sel[1]!, doc);
        for (const l of sel[2]!.matchAll(/([a-z_]+)\s*[!=]~?/g))
          expect(doc.get(name)!.labels, `${alert}: ${name} has no label ${l[1]}`).toContain(l[1]);
      }
      for (const by of expr.matchAll(/\bby \(([^)]*)\)/g))
        for (const l of by[1]!.split(",").map((x) => x.trim()))
          expect(known.has(l), `${alert}: grouped by ${l}, which its metrics do not have`).toBe(true);
    }
  });

  it("behavior: the README lists every alert, and only those", () => {
    const listed = [...README.matchAll(/^\| `(Vigil\w+)` \|/gm)].map((m) => m[1]).sort();
    expect(listed).toEqual(
      rules()
        .map((r) => r.alert)
        .sort(),
    );
  });

  it("behavior: every setting the rules and the README name is one the config has (on-call staff look them up)", () => {
    const sections = Object.keys(DEFAULT_CONFIG).join("|");
    const named = [
      ...`${RULES}\n${README}`.matchAll(new RegExp(`\\b(?:${sections}|anchor)\\.[a-zA-Z.]+[a-zA-Z]`, "g")),
    ]
      .map((m) => m[0])
      .filter((p) => !/\.(ya?ml|json|md)$/.test(p));
    expect(named.length).toBeGreaterThan(5);
    for (const path of new Set(named)) {
      let at: unknown = DEFAULT_CONFIG;
      for (const k of path.split(".")) at = (at as Record<string, unknown> | null)?.[k];
      expect(at, `${path} is not a setting`).not.toBeUndefined();
    }
  });
});
