import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BEGIN, END, renderConfigDocs } from "../../gateway/src/config/docs.ts";
import { DEFAULT_CONFIG } from "../../gateway/src/config/config.ts";

describe("README configuration table", () => {
  const readme = readFileSync("README.md", "utf8");

  it("docs: the README's table is the one rendered from the schema (npm run docs:config)", () => {
    const block = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END) + END.length);
    expect(block).toBe(renderConfigDocs());
  });

  it("docs: every resolved setting has its row with its default", () => {
    const leaves = (o: object, p: string): Array<[string, unknown]> =>
      Object.entries(o).flatMap(([k, v]) =>
        v !== null && typeof v === "object" && !Array.isArray(v) ? leaves(v, `${p}${k}.`) : [[`${p}${k}`, v]],
      );
    const table = renderConfigDocs();
    for (const [path, value] of leaves(DEFAULT_CONFIG, "")) {
      const row = table.split("\n").find((l) => l.startsWith(`| \`${path}\` | `));
      expect(row, path).toBeDefined();
      expect(row).toContain(`\`${JSON.stringify(value)}\``);
    }
  });
});
