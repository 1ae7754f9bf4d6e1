/**
 * The MQTT payload schemas (gateway/src/alerts/schemas/*.json) describe every field: each
 * property, at any depth (objects, array items, oneOf/anyOf branches), has a `description`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DIR = "gateway/src/alerts/schemas";

type Node = { [k: string]: unknown };

/** Paths of properties without a description. */
function undescribed(node: unknown, path = ""): string[] {
  if (!node || typeof node !== "object") return [];
  if (Array.isArray(node)) return node.flatMap((n, i) => undescribed(n, `${path}[${i}]`));
  const n = node as Node;
  const out: string[] = [];
  for (const [k, v] of Object.entries((n.properties ?? {}) as Record<string, Node>)) {
    if (typeof v.description !== "string" || v.description.trim() === "") out.push(`${path}.${k}`);
    out.push(...undescribed(v, `${path}.${k}`));
  }
  for (const k of ["items", "oneOf", "anyOf", "allOf", "additionalProperties", "if", "then", "else"])
    if (n[k] && typeof n[k] === "object") out.push(...undescribed(n[k], `${path}/${k}`));
  for (const k of ["$defs", "definitions"])
    for (const [name, d] of Object.entries((n[k] ?? {}) as Record<string, unknown>))
      out.push(...undescribed(d, `${path}#${name}`));
  return out;
}

describe("MQTT payload schemas", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".schema.json"));

  it("behavior: every property of every payload schema has a description", () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
    const missing = files.flatMap((f) =>
      undescribed(JSON.parse(readFileSync(join(DIR, f), "utf8"))).map((p) => `${f}: ${p}`),
    );
    expect(missing).toEqual([]);
  });

  it("error: the walk finds an undescribed property inside array items and oneOf branches", () => {
    const schema = {
      properties: {
        a: {
          description: "x",
          type: "array",
          items: { properties: { b: { type: "number" } } },
        },
        c: { description: "y", oneOf: [{ type: "null" }, { properties: { d: { type: "string" } } }] },
      },
    };
    expect(undescribed(schema)).toEqual([".a/items.b", ".c/oneOf[1].d"]);
  });
});
