/**
 * The README's configuration table, rendered from the schema (config/schema.ts): one row per
 * setting with its type, default and meaning. `npm run docs:config` writes it into README.md
 * between the markers; test/config/docs.test.ts fails when the README differs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../core/errors.ts";
import { ConfigSchema } from "./schema.ts";

export const BEGIN =
  "<!-- config:begin (generated from gateway/src/config/schema.ts by `npm run docs:config`) -->";
export const END = "<!-- config:end -->";

interface Node {
  type?: string | string[];
  enum?: string[];
  default?: unknown;
  /** How the table states a default computed per machine. */
  defaultDoc?: string;
  description?: string;
  properties?: Record<string, Node>;
  items?: Node;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  maxLength?: number;
  maxItems?: number;
  anyOf?: Node[];
}

function baseType(n: Node): string {
  if (n.enum) return n.enum.map((v) => `"${v}"`).join(" \\| ");
  const types = Array.isArray(n.type) ? n.type : [n.type ?? "object"];
  return types.map((x) => (x === "array" && n.items ? `${baseType(n.items)}[]` : x)).join(" \\| ");
}

function typeOf(n: Node): string {
  if (n.enum) return baseType(n);
  const t = baseType(n);
  const lo = n.minimum ?? (n.exclusiveMinimum === undefined ? undefined : `>${n.exclusiveMinimum}`);
  const range = lo !== undefined || n.maximum !== undefined ? ` (${lo ?? "…"}–${n.maximum ?? "…"})` : "";
  return t + range + rules(n) + (n.items ? rules(n.items).replace(/^, /, ", each ") : "");
}

/** The string and list rules the schema enforces (pattern, lengths), as the table shows them. */
function rules(n: Node): string {
  const out: string[] = [];
  if (n.pattern) out.push(`matching \`${n.pattern.replaceAll("|", "\\|")}\``);
  if (n.maxLength !== undefined) out.push(`at most ${n.maxLength} characters`);
  if (n.maxItems !== undefined) out.push(`at most ${n.maxItems} items`);
  return out.length ? `, ${out.join(", ")}` : "";
}

function rows(n: Node, path: string, out: string[]): void {
  for (const [k, v] of Object.entries(n.properties ?? {})) {
    const p = path ? `${path}.${k}` : k;
    // A nullable object (default null) is one row: its fields are listed in the type.
    if (v.properties && v.default === null) {
      const fields = Object.entries(v.properties)
        .map(([f, fv]) => `${f}: ${typeOf(fv).replaceAll(" \\| ", "/")}`)
        .join(", ");
      out.push(`| \`${p}\` | {${fields}} \\| null | \`null\` | ${v.description ?? ""} |`);
    } else if (v.properties) rows(v, p, out);
    else if (v.items?.properties) {
      out.push(`| \`${p}\` | object[] | \`${JSON.stringify(v.default)}\` | ${v.description ?? ""} |`);
      rows(v.items, `${p}[]`, out);
    } else {
      const def = v.defaultDoc ?? (v.default === undefined ? "required" : `\`${JSON.stringify(v.default)}\``);
      out.push(`| \`${p}\` | ${typeOf(v)} | ${def} | ${v.description ?? ""} |`);
    }
  }
}

/** The markdown between (and including) the markers. */
export function renderConfigDocs(): string {
  const out = [BEGIN, "", "| setting | type | default | meaning |", "|---|---|---|---|"];
  rows(ConfigSchema as unknown as Node, "", out);
  out.push("", END);
  return out.join("\n");
}

/** Replaces the README's block with the rendered one; returns whether it changed. */
export function writeConfigDocs(readme: string): boolean {
  const text = readFileSync(readme, "utf8");
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new ConfigError(readme, "has no configuration markers");
  const next = text.slice(0, a) + renderConfigDocs() + text.slice(b + END.length);
  if (next !== text) writeFileSync(readme, next);
  return next !== text;
}

// `npm run docs:config`
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readme = fileURLToPath(new URL("../../../README.md", import.meta.url));
  console.log(writeConfigDocs(readme) ? `${readme}: configuration table updated` : `${readme}: up to date`);
}
