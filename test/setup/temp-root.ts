/**
 * Vitest global setup: one temporary root per run, removed when the run ends.
 *
 * Tests make their folders with `mkdtemp(join(tmpdir(), …))`, and the gateways, brokers and
 * browsers they start write under `tmpdir()` as well. Many of those folders were never removed
 * (each run left about 400 MB in /tmp), and on a shared disk that litter filled it: CI's install
 * test then failed with ENOSPC. Pointing TMPDIR at this root (inherited by the test workers and
 * every child process they start) puts all of it in one place that the run removes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Name of the environment variable that carries the run's root to `temp-file.ts`. */
export const ROOT_ENV = "VIGIL_TEST_TMP_ROOT";

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), "vigil-test-"));
  process.env[ROOT_ENV] = root;
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
