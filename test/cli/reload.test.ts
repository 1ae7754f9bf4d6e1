/**
 * SIGHUP reloads what can change at run time (log level, allowed and revoked devices) in the
 * running `vigil start`; other changes are named as needing a restart; a bad file keeps the
 * running config.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it, vi } from "vitest";
import { freePort, stop } from "../helpers/procs.ts";

const run = promisify(execFile);
let gw: ChildProcess | undefined;
afterAll(() => stop(gw));

describe("vigil start: SIGHUP", () => {
  it("behavior: applies log.level and ingest.revoked at once, names the rest, keeps the config on a bad file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-hup-"));
    const port = await freePort();
    const cfgFile = join(dir, "config.json");
    const base = {
      dataDir: dir,
      mqtt: { embedded: { port } },
      // Any free port: the default 9479 may be taken by another gateway on this machine.
      http: { port: 0 },
      models: { enabled: false },
      log: { statsIntervalMs: 200 },
    };
    writeFileSync(cfgFile, JSON.stringify(base));
    gw = spawn(process.execPath, ["bin/vigil.js", "start", "-c", cfgFile], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    gw.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    await vi.waitFor(() => expect(log).toMatch(/"msg":"gateway started"/), { timeout: 30_000, interval: 50 });
    const lines = () =>
      log
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const reloaded = () => lines().filter((l) => l.msg === "configuration reloaded");

    const sim = () =>
      run(process.execPath, [
        "bin/vigil.js",
        "sim",
        "--mqtt",
        `mqtt://127.0.0.1:${port}`,
        "--devices",
        "1",
        "--frames",
        "3",
        "--rate",
        "0",
        "--drain-ms",
        "1500",
      ]).catch(() => undefined);
    const revokedRejections = () =>
      Math.max(
        0,
        ...lines()
          .filter((l) => l.msg === "stats")
          .map((l) => (l.ingest as { rejected: Record<string, number> }).rejected.REVOKED_DEVICE ?? 0),
      );

    // 1: revoke device 1 and change the site (not reloadable).
    writeFileSync(cfgFile, JSON.stringify({ ...base, site: "plant-9", ingest: { revoked: ["00000001"] } }));
    gw.kill("SIGHUP");
    await vi.waitFor(() => expect(reloaded()).toHaveLength(1), { timeout: 10_000, interval: 50 });
    expect(reloaded()[0]).toMatchObject({ applied: ["ingest.revoked"], needsRestart: ["site"] });
    await sim(); // REVOKED_DEVICE NACKs: the simulated device drops those frames
    await vi.waitFor(() => expect(revokedRejections()).toBeGreaterThanOrEqual(1), {
      timeout: 15_000,
      interval: 100,
    });

    // 2: log level "error": the periodic (info) stats lines stop while frames keep arriving.
    writeFileSync(
      cfgFile,
      JSON.stringify({
        ...base,
        site: "plant-9",
        ingest: { revoked: ["00000001"] },
        log: { ...base.log, level: "error" },
      }),
    );
    gw.kill("SIGHUP");
    await vi.waitFor(() => expect(reloaded()).toHaveLength(2), { timeout: 10_000, interval: 50 });
    expect(reloaded()[1]).toMatchObject({ applied: ["log.level"], needsRestart: ["site"] });
    const at = lines().length;
    await sim(); // ≥ 1.5 s with a 200 ms stats interval
    expect(
      lines()
        .slice(at)
        .filter((l) => l.msg === "stats"),
    ).toEqual([]);

    writeFileSync(cfgFile, "{ not json");
    gw.kill("SIGHUP");
    await vi.waitFor(
      () =>
        expect(lines().some((l) => l.msg === "configuration not reloaded: keeping the running one")).toBe(
          true,
        ),
      { timeout: 10_000, interval: 50 },
    );
    expect(gw.exitCode).toBeNull();
  }, 90_000);
});

describe("setLogLevel", () => {
  it("behavior: changes the level of the root logger and of children made before and after", async () => {
    const { createLogger, setLogLevel } = await import("../../gateway/src/core/log.ts");
    const root = createLogger("info");
    const child = root.child({ component: "ingest" });
    const grandchild = child.child({ source: "serial" });
    setLogLevel(root, "error");
    for (const l of [root, child, grandchild, root.child({ component: "late" })])
      expect((l as unknown as { level: string }).level).toBe("error");
  }, 90_000);
});
