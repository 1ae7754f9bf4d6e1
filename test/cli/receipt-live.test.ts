/**
 * An auditor exports and verifies receipts while the gateway runs: `vigil receipt` reads a
 * snapshot of the store the gateway holds open, and leaves nothing behind, also when SIGTERM or
 * SIGINT stops it.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { freePort, requireTool, stop } from "../helpers/procs.ts";

const run = promisify(execFile);
const PASS = "receipt-live-passphrase";
let gw: ChildProcess | undefined;
afterAll(() => stop(gw));

describe("vigil receipt while the gateway runs", () => {
  it("behavior: exports a bundle from a snapshot, verify passes, the gateway keeps running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-live-"));
    await writeKeystore(join(dir, "gateway.key"), generateKey("secp256k1"), PASS, { N: 1 << 10 });
    const addr = `0x${"11".repeat(20)}`;
    writeFileSync(
      join(dir, "deployment.json"),
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: "31337",
        contracts: { VigilRegistry: { address: addr }, VigilReleases: { address: addr } },
      }),
    );
    const port = await freePort();
    const cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        dataDir: dir,
        mqtt: { embedded: { port } },
        http: { port: 0 },
        models: { enabled: false },
        chain: { deployment: "deployment.json" },
        attest: { batchIntervalMs: 200 },
        log: { statsIntervalMs: 0 },
      }),
    );
    const env = { ...process.env, VIGIL_KEYSTORE_PASSPHRASE: PASS };
    gw = spawn(process.execPath, ["bin/vigil.js", "start", "-c", cfg], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    gw.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    await vi.waitFor(() => expect(log).toMatch(/"msg":"gateway started"/), { timeout: 30_000, interval: 50 });
    await run(
      process.execPath,
      [
        "bin/vigil.js",
        "sim",
        "--mqtt",
        `mqtt://127.0.0.1:${port}`,
        "--devices",
        "1",
        "--frames",
        "20",
        "--rate",
        "0",
      ],
      {
        env,
      },
    );
    await vi.waitFor(() => expect(log).toMatch(/"msg":"batch sealed"/), { timeout: 30_000, interval: 50 });

    const bundle = join(dir, "bundle.json");
    const r = await run(
      process.execPath,
      ["bin/vigil.js", "receipt", "--store", join(dir, "store"), "--device", "00000001", "--out", bundle],
      { env },
    );
    expect(r.stderr).toMatch(/the store is in use \(gateway running\): reading a snapshot/);
    expect(r.stderr).toMatch(/exported [1-9]\d* receipts/);
    const v = await run(process.execPath, ["bin/vigil.js", "verify", bundle], { env });
    expect(v.stdout).toMatch(/^([1-9]\d*)\/\1 receipts verified offline$/m);
    expect(gw.exitCode).toBeNull();
    expect(readdirSync(dir).filter((n) => n.includes("snapshot"))).toEqual([]);
  }, 90_000);
});

describe("vigil receipt stopped by a signal", () => {
  // Stopped by PID whatever the test's outcome, a timeout included.
  const exports: ChildProcess[] = [];
  afterEach(async () => {
    for (const p of exports.splice(0)) await stop(p, "SIGKILL");
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const)
    it(`behavior: ${signal} during an export from a snapshot removes the snapshot, then ends the process by that signal`, async () => {
      const data = mkdtempSync(join(tmpdir(), "vigil-receipt-sig-"));
      // The store held open, as by a running gateway: the export reads a snapshot.
      const held = new LevelFrameStore({ dir: join(data, "store"), reserveBytes: 0 });
      await held.open();
      // A FIFO nobody reads: writing the bundle blocks, so the export is under way when signalled.
      const out = join(data, "bundle.fifo");
      execFileSync(requireTool("mkfifo", "coreutils"), [out]);
      const p = spawn(
        process.execPath,
        ["bin/vigil.js", "receipt", "--store", join(data, "store"), "--device", "00000001", "--out", out],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      exports.push(p);
      let err = "";
      p.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const exited = new Promise<unknown>((res) => p.once("exit", (code, sig) => res({ code, sig })));
      try {
        await vi.waitFor(() => expect(err).toMatch(/reading a snapshot/), { timeout: 20_000, interval: 20 });
        expect(readdirSync(data).filter((n) => n.startsWith(`.vigil-snapshot-${p.pid}@`))).toHaveLength(1);
        p.kill(signal);
        expect(await exited).toEqual({ code: null, sig: signal });
        expect(err).toContain(`vigil receipt: stopped by ${signal}; its snapshot of the store removed`);
        expect(readdirSync(data).filter((n) => n.includes("snapshot"))).toEqual([]);
      } finally {
        await held.close();
      }
    }, 60_000);
});
