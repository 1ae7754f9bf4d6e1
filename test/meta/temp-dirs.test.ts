/**
 * The test run's temporary folders (test/setup): every file works under its own folder inside the
 * run's root, and the processes it starts inherit it, so nothing a test writes outlives the run.
 */
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT_ENV } from "../setup/temp-root.ts";

describe("temporary folders of a test run", () => {
  it("behavior: this file's tmpdir() is its own folder under the run's root, which is under the system's", () => {
    const root = process.env[ROOT_ENV];
    expect(root).toMatch(new RegExp(`\\${sep}vigil-test-[^${sep}]+$`));
    expect(dirname(tmpdir())).toBe(root);
    expect(tmpdir()).toMatch(/\/f-[^/]+$/);
  });

  it("behavior: a child process inherits it", () => {
    const out = execFileSync(process.execPath, ["-e", "process.stdout.write(require('os').tmpdir())"]);
    expect(out.toString()).toBe(tmpdir());
  });
});
