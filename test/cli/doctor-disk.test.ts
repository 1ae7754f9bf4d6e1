// vigil doctor's disk check: the data folder must be writable by the user who runs the gateway,
// not only have free space (a root-owned data folder made `vigil start` fail right after a
// passing doctor). Root passes every permission check, so the refusal comes from an injected
// access function; the real one is checked on a folder this process owns.
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkDisk } from "../../gateway/src/cli/doctor.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";

describe("vigil doctor: disk", () => {
  const base = mkdtempSync(join(tmpdir(), "vigil-doctor-"));
  const cfg = (dataDir: string) => resolveConfig({ dataDir, store: { minFreeBytes: 0, reserveBytes: 0 } });

  it("behavior: a data folder this user can write passes, with its free space", async () => {
    expect(await checkDisk(cfg(join(base, "not-yet")))).toMatchObject({
      name: "disk",
      status: "ok",
      detail: expect.stringMatching(new RegExp(`MiB free at ${base}$`)),
    });
  });

  it("error: a store (or the nearest existing folder above a new data folder) this user cannot write fails, naming it and the fix", async () => {
    mkdirSync(join(base, "d", "store"), { recursive: true });
    const seen: string[] = [];
    const refuse = (p: string): void => {
      seen.push(p);
      throw Object.assign(new Error("EACCES"), { code: "EACCES" });
    };
    const r = await checkDisk(cfg(join(base, "d")), refuse);
    expect(r.status).toBe("fail");
    expect(r.detail).toMatch(/d\/store is not writable by this user \(uid \d+\); run as the gateway's user/);
    expect(seen).toEqual([join(base, "d", "store")]);
    const fresh = await checkDisk(cfg(join(base, "new", "deeper")), refuse);
    expect(fresh.detail).toContain(`${base} is not writable by this user`);
  });
});
