/**
 * Interop helpers for access control on real MQTT parts from Debian: a Mosquitto configured the
 * way access/mosquitto.ts documents (password file + dynamic-security plugin), and runs of the
 * `mosquitto_pub` / `mosquitto_sub` binaries (package mosquitto-clients) that are waited on by
 * their output or exit, never by a fixed sleep, and stopped by their own PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { freePort, requireTool, stop } from "./procs.ts";

/** The dynamic-security plugin Debian's mosquitto ships (/usr/lib/<multiarch>/). */
export function dynsecPlugin(): string {
  for (const d of readdirSync("/usr/lib")) {
    const p = join("/usr/lib", d, "mosquitto_dynamic_security.so");
    if (existsSync(p)) return p;
  }
  const p = "/usr/lib/mosquitto_dynamic_security.so";
  if (existsSync(p)) return p;
  throw new Error(
    'mosquitto_dynamic_security.so not found: install the Debian package "mosquitto" (.ci/run does)',
  );
}

/** Configuration lines for the export in `dir`: the password file and the dynamic-security plugin (no acl_file). */
export function dynsecDirectives(dir: string): string[] {
  return [
    `password_file ${join(dir, "vigil.passwd")}`,
    `plugin ${dynsecPlugin()}`,
    `plugin_opt_config_file ${join(dir, "vigil.dynsec.json")}`,
  ];
}

export interface AccessMosquitto {
  proc: ChildProcess;
  port: number;
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/** Mosquitto on a free loopback port with the export in `dir` (written before), anonymous refused. */
export async function accessMosquitto(dir: string): Promise<AccessMosquitto> {
  const bin = requireTool("mosquitto", "mosquitto");
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      "per_listener_settings false",
      // As root Mosquitto drops to the "mosquitto" user, which cannot read the 0600 export; a
      // plant install gives the files to the broker's user instead (see access/mosquitto.ts).
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      `listener ${port} 127.0.0.1`,
      "allow_anonymous false",
      ...dynsecDirectives(dir),
      "max_packet_size 16384",
      "persistence false",
      "log_dest stderr",
      "",
    ].join("\n"),
  );
  const proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const end = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect(port, "127.0.0.1", () => (s.end(), res(true)));
      s.on("error", () => res(false));
    });
    if (ok) break;
    if (Date.now() > end || proc.exitCode !== null) throw new Error(`mosquitto did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, port, url: `mqtt://127.0.0.1:${port}`, log: () => log, stop: () => stop(proc) };
}

export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running mosquitto_pub / mosquitto_sub: its output so far, and its exit. */
export interface ClientProc {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` appears on stdout or stderr (rejects if the process exits first). */
  until(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<ClientRun>;
  stop(): Promise<void>;
}

/** Starts `mosquitto_pub` or `mosquitto_sub` (package mosquitto-clients) against 127.0.0.1:`port`. */
export function mosquittoClient(
  tool: "mosquitto_pub" | "mosquitto_sub",
  port: number,
  args: string[],
  input?: Buffer | string,
): ClientProc {
  const bin = requireTool(tool, "mosquitto-clients");
  // stdout into a pipe is block-buffered by stdio, so "Subscribed …" would appear only at exit;
  // stdbuf (coreutils) makes it line-buffered and execs the client (same PID).
  const stdbuf = requireTool("stdbuf", "coreutils");
  const proc = spawn(stdbuf, ["-oL", bin, "-h", "127.0.0.1", "-p", String(port), ...args], {
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (input !== undefined) proc.stdin?.end(input);
  let out = "";
  let err = "";
  const watchers = new Set<() => void>();
  const changed = (): void => watchers.forEach((w) => w());
  proc.stdout?.on("data", (d: Buffer) => ((out += d.toString()), changed()));
  proc.stderr?.on("data", (d: Buffer) => ((err += d.toString()), changed()));
  const exited = new Promise<ClientRun>((res) =>
    proc.once("close", (code) => (changed(), res({ code, stdout: out, stderr: err }))),
  );
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    until(pattern, timeoutMs = 10_000) {
      return new Promise<void>((res, rej) => {
        const check = (): void => {
          if (pattern.test(out) || pattern.test(err)) return done(res);
          if (proc.exitCode !== null || proc.signalCode !== null)
            done(() => rej(new Error(`${tool} exited (${proc.exitCode}) before ${pattern}: ${out}${err}`)));
        };
        const t = setTimeout(
          () => done(() => rej(new Error(`${tool}: no ${pattern} within ${timeoutMs} ms: ${out}${err}`))),
          timeoutMs,
        );
        const done = (f: () => void): void => {
          clearTimeout(t);
          watchers.delete(check);
          f();
        };
        watchers.add(check);
        check();
      });
    },
    stop: () => stop(proc),
  };
}

/** Runs a client to its exit (it must exit by itself: -C/-W for mosquitto_sub). */
export async function runClient(
  tool: "mosquitto_pub" | "mosquitto_sub",
  port: number,
  args: string[],
  input?: Buffer | string,
): Promise<ClientRun> {
  const c = mosquittoClient(tool, port, args, input);
  const t = setTimeout(() => void c.stop(), 20_000);
  try {
    return await c.exited;
  } finally {
    clearTimeout(t);
  }
}

/** The SUBACK codes `mosquitto_sub -d` printed ("Subscribed (mid: 1): 128, 0"). */
export function subscribedCodes(stdout: string): number[] {
  const m = /Subscribed \(mid: \d+\): ([\d, ]+)/.exec(stdout);
  if (!m) throw new Error(`no SUBACK in mosquitto_sub output: ${stdout}`);
  return m[1]!.split(",").map((s) => Number(s.trim()));
}
