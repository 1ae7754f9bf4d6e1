/**
 * `vigil --help` and `vigil <command> --help` start without loading ethers (README, `cli`
 * benchmark: the goal is ≤ 0.5 s per command, and ethers alone costs a few hundred ms of CPU at
 * start-up). cli/fatal.ts, which main.ts loads for every command, once imported chain/errors.ts
 * (and through it ethers) for one `instanceof`: every `--help` then paid for ethers. A resolve hook
 * in the spawned CLI writes each module under node_modules/ethers it resolves to a file.
 */
import { execFile } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importTraceHook } from "../helpers/import-trace.ts";

const ethers = importTraceHook(/\/node_modules\/ethers\//);
/** The libraries that made `start`, `status`, `init`, `store` and `receipt --help` take 0.24–0.38 s. */
const HEAVY =
  /\/node_modules\/(ethers|ajv|@sinclair\/typebox|node-cron|level|classic-level|onnxruntime-node|aedes)\//;
const heavy = importTraceHook(HEAVY);

/** The watched modules `vigil ARGS` resolved (the CLI from its sources, as `npx vigil` runs it). */
function loadedBy(
  hook: { dir: string; register: string },
  args: string[],
  name: string,
): Promise<{ code: number | null; loaded: string[] }> {
  const { dir, register } = hook;
  const trace = join(dir, `${name}.txt`);
  return new Promise((res) => {
    execFile(
      process.execPath,
      ["--import", register, "bin/vigil.js", ...args],
      { env: { ...process.env, VIGIL_TRACE_FILE: trace, VIGIL_DIST: "0" }, timeout: 60_000 },
      (e) =>
        res({
          code: e ? ((e as { code?: number }).code ?? 1) : 0,
          loaded: existsSync(trace) ? readFileSync(trace, "utf8").split("\n").filter(Boolean) : [],
        }),
    );
  });
}

describe("CLI start-up imports", () => {
  it("behavior: vigil --help and the chain commands' --help (chain, status, access, token) load no ethers module", async () => {
    for (const [name, args] of [
      ["root", ["--help"]],
      ["chain", ["chain", "--help"]],
      ["status", ["status", "--help"]],
      ["access", ["access", "--help"]],
      ["token", ["token", "--help"]],
    ] as const) {
      const r = await loadedBy(ethers, [...args], name);
      expect(r.code, name).toBe(0);
      expect(r.loaded.slice(0, 3), `vigil ${args.join(" ")} loaded ethers`).toEqual([]);
    }
  }, 120_000);

  it("behavior: every command's --help is printed without loading ethers, the config validator, LevelDB, onnxruntime or aedes", async () => {
    const commands = [
      "start",
      "status",
      "sim",
      "demo",
      "chain",
      "anchor",
      "access",
      "token",
      "keys",
      "receipt",
      "verify",
      "store",
      "doctor",
      "init",
      "release",
      "update",
    ];
    const runs = await Promise.all(commands.map((c) => loadedBy(heavy, [c, "--help"], `heavy-${c}`)));
    for (const [i, r] of runs.entries()) {
      expect(r.code, commands[i]).toBe(0);
      expect([...new Set(r.loaded)], `vigil ${commands[i]} --help loaded`).toEqual([]);
    }
  }, 120_000);
});
