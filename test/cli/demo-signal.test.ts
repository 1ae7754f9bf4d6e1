/**
 * `vigil demo` stopped by a signal (Ctrl-C, `kill PID`) stops what it started, by PID, and
 * removes its data folder: before, Node's default ended the process at once and anvil and socat
 * lived on as orphans.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { which } from "../helpers/procs.ts";

/** Whether a process with this PID exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw e;
  }
}

/** PIDs of `pid`'s child processes (from /proc/PID/stat: the field after the state is the parent). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${d}/stat`, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return false; // exited meanwhile
        throw e;
      }
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
    })
    .map(Number);
}

/** A process's program name (argv[0]), or undefined once it has exited. */
function command(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("vigil demo and signals", () => {
  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)(
    "behavior: %s stops anvil and socat by PID and removes the data folder and anvil's HOME",
    async (signal, status) => {
      const p = spawn(process.execPath, ["bin/vigil.js", "demo", "--duration", "120", "--devices", "2"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      p.stdout.on("data", (d: Buffer) => (out += d.toString()));
      p.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => p.on("close", (code) => r(code)));
      let children: number[] = [];
      try {
        await until("the gateway", () => /gateway up/.test(out), 60_000);
        const anvilPid = Number(/anvil \(pid (\d+)\)/.exec(out)![1]);
        // What the demo started: anvil and socat (the gateway and the simulators run in-process;
        // tsx's esbuild service, also a child, ends with its parent's pipe).
        children = childrenOf(p.pid!).filter((c) => c === anvilPid || command(c) === "socat");
        expect(children).toContain(anvilPid);
        expect(children).toHaveLength(which("socat") ? 2 : 1);
        // anvil runs with a temporary HOME of its own (gateway/src/chain/anvil.ts).
        const anvilHome = readFileSync(`/proc/${anvilPid}/environ`, "utf8")
          .split("\0")
          .find((kv) => kv.startsWith("HOME="))
          ?.slice("HOME=".length);
        expect(anvilHome).toMatch(/vigil-anvil-/);
        expect(existsSync(anvilHome!)).toBe(true);
        p.kill(signal);
        expect(await exited).toBe(status);
        const dataDir = new RegExp(`stopped by ${signal}; removed (\\S+)`).exec(out)?.[1];
        expect(dataDir, out).toMatch(/vigil-demo-/);
        expect(existsSync(dataDir!)).toBe(false);
        expect(existsSync(anvilHome!), "anvil's temporary HOME was left behind").toBe(false);
        await until("anvil and socat to exit", () => children.every((c) => !alive(c)));
        expect(out).not.toMatch(/^\s+at /m);
      } finally {
        if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
        // What a failing run left behind, by PID.
        for (const c of children.filter(alive)) process.kill(c, "SIGKILL");
      }
    },
    90_000,
  );
});
