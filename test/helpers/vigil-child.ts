/**
 * `bin/vigil.js` as a child process for tests that drive the CLI (the independent clients' tests),
 * and a polling wait with a deadline. Children are recorded in the caller's list so its afterAll
 * stops them by their own PID (procs.ts `stop`).
 */
import { spawn, type ChildProcess } from "node:child_process";

/** A vigil child process; `log()` is everything it wrote so far, stdout and stderr interleaved. */
export type VigilChild = ChildProcess & { log: () => string };

/** Starts `vigil ARGS` with `env` added to this process's environment, and records it in `children`. */
export function spawnVigil(
  children: ChildProcess[],
  args: string[],
  env: NodeJS.ProcessEnv = {},
): VigilChild {
  const p = spawn(process.execPath, ["bin/vigil.js", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let log = "";
  p.stdout.on("data", (d: Buffer) => (log += d.toString()));
  p.stderr.on("data", (d: Buffer) => (log += d.toString()));
  children.push(p);
  return Object.assign(p, { log: () => log });
}

/**
 * Calls `f` until it returns a truthy value, which it resolves to; rejects after `ms` (default
 * 20 s) with "timed out waiting for WHAT" and, when given, `detail()` (the children's logs, say).
 */
export async function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 20_000,
  o: { everyMs?: number; detail?: () => string | Promise<string> } = {},
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) {
      const detail = o.detail ? `: ${await o.detail()}` : "";
      throw new Error(`timed out waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, o.everyMs ?? 50));
  }
}
