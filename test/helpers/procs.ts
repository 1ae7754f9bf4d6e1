/** Child processes for integration tests: started here, stopped by their own PID. */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Runs `vigil ARGS` (bin/vigil.js) as a child process without blocking this one, for tests whose
 * gateway runs in the test process; resolves with its exit code and output when it closes.
 */
export function runVigil(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, ["bin/vigil.js", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => res({ code, stdout, stderr }));
  });
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export function which(cmd: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Throws with an install hint when a required tool is missing (tests must not skip silently). */
export function requireTool(cmd: string, pkg: string): string {
  const p = which(cmd) ?? (existsSync(`/usr/sbin/${cmd}`) ? `/usr/sbin/${cmd}` : undefined);
  if (!p) throw new Error(`${cmd} not found: install the Debian package "${pkg}" (.ci/run does)`);
  return p;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function stop(p: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((res) => p.once("exit", res));
  p.kill(signal);
  await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
  if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}

export interface PtyPair {
  a: string;
  b: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** A real pty pair from socat with stable link names (ENVIRONMENT.md). */
export async function ptyPair(dir = mkdtempSync(join(tmpdir(), "vigil-pty-"))): Promise<PtyPair> {
  const socat = requireTool("socat", "socat");
  const a = join(dir, "A");
  const b = join(dir, "B");
  const proc = spawn(socat, [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: "ignore" });
  await waitFor(() => existsSync(a) && existsSync(b), 5000, "socat ptys");
  return { a, b, proc, stop: () => stop(proc) };
}

export interface Mosquitto {
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Mosquitto from Debian on a free loopback port, persistence off, queue large enough for bursts. */
export async function mosquitto(): Promise<Mosquitto> {
  const bin = requireTool("mosquitto", "mosquitto");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "vigil-mosq-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "max_queued_messages 100000",
      "persistence false",
      "",
    ].join("\n"),
  );
  const proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let out = "";
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const { connect } = await import("node:net");
  await waitFor(() => out.length > 0 || proc.exitCode !== null, 5000, "mosquitto output").catch(
    () => undefined,
  );
  const end = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, "127.0.0.1", () => {
        s.end();
        res(true);
      });
      s.on("error", () => res(false));
    });
    if (ok) break;
    if (Date.now() > end || proc.exitCode !== null) throw new Error(`mosquitto did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, url: `mqtt://127.0.0.1:${port}`, proc, stop: () => stop(proc) };
}

/** What {@link runGroup} saw: the exit code (null when killed), the output, and whether it was killed. */
export interface GroupRun {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs `cmd args` in its own process group and kills the whole group after `ms` (a command that
 * should have refused its arguments but started work, with whatever it started: anvil, a build).
 */
export function runGroup(cmd: string, args: string[], ms: number): Promise<GroupRun> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-p.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, ms);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}
