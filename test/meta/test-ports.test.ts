/**
 * Tests bind only to free ports: a test that starts a Runtime must say where its HTTP endpoint
 * listens (`http: { port: 0 }` or disabled), or it takes the default 127.0.0.1:9479 and fails
 * (EADDRINUSE) whenever another gateway, demo or test holds it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../../gateway/src/core/paths.ts";

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("test hygiene", () => {
  it("behavior: every test file that starts a Runtime sets its HTTP endpoint (never the default port)", () => {
    const root = packageRoot();
    const offenders = files(join(root, "test")).filter((f) => {
      const s = readFileSync(f, "utf8");
      return s.includes("new Runtime(") && /\.start\(\)/.test(s) && !/\bhttp: \{/.test(s);
    });
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });
});
