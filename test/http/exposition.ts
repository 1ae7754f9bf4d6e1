import { readFileSync } from "node:fs";

/**
 * A small parser of the Prometheus text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/)
 * for tests: families by name with their TYPE, HELP and samples. `promtool check metrics` (interop)
 * is the authority on validity; this reads what the tests assert on.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

function unescape(v: string): string {
  return v.replace(/\\(n|\\|")/g, (_m, c: string) => (c === "n" ? "\n" : c));
}

/** The family a sample belongs to: histogram samples carry _bucket/_sum/_count suffixes. */
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  if (families.has(sample)) return families.get(sample);
  const m = /^(.*)_(bucket|sum|count)$/.exec(sample);
  return m ? families.get(m[1]!) : undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const fam = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: "untyped", help: "", samples: [] }));
    return f;
  };
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      if (meta[1] === "HELP") fam(meta[2]!).help = meta[3]!;
      else fam(meta[2]!).type = meta[3]!;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const l of (m[2] ?? "").matchAll(re)) labels[l[1]!] = unescape(l[2]!);
    const f = familyOf(m[1]!, families);
    if (!f) throw new Error(`sample ${m[1]} before its TYPE line`);
    f.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return families;
}

/** Label names used by a family's samples (le excluded), sorted. */
export function labelNames(f: Family): string[] {
  const s = new Set<string>();
  for (const x of f.samples) for (const k of Object.keys(x.labels)) if (k !== "le") s.add(k);
  return [...s].sort();
}

/** The one sample of `name` whose labels include `labels`; throws when there is none or several. */
export function sample(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = familyOf(name, families);
  const hits = (f?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length !== 1)
    throw new Error(
      `${hits.length} samples of ${name}${JSON.stringify(labels)}: ${JSON.stringify(hits.slice(0, 3))}`,
    );
  return hits[0]!.value;
}

/** The metric table of gateway/src/http/README.md: name → type and label names. */
export function documented(): Map<string, { type: string; labels: string[] }> {
  const md = readFileSync("gateway/src/http/README.md", "utf8");
  const out = new Map<string, { type: string; labels: string[] }>();
  for (const m of md.matchAll(/^\| `(vigil_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|/gm)) {
    const labels = [...m[3]!.matchAll(/`([a-z0-9_]+)`/g)].map((x) => x[1]!).sort();
    out.set(m[1]!, { type: m[2]!, labels });
  }
  return out;
}
