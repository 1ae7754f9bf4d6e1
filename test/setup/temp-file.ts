/**
 * Vitest setup file: each test file gets its own temporary folder under the run's root (see
 * temp-root.ts), removed after the file's own afterAll hooks have run (hooks run as a stack, so
 * this one, registered first, runs last). This keeps the disk in use by one file at a time,
 * which matters for the interop files that install the whole product.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll } from "vitest";
import { ROOT_ENV } from "./temp-root.ts";

const root = process.env[ROOT_ENV];
if (root) {
  const dir = mkdtempSync(join(root, "f-"));
  process.env.TMPDIR = dir;
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
}
