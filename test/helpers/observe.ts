/**
 * Observers of a running gateway for interop tests: `vigil demo` as a child process (its live
 * page URL read from its output), a real Prometheus from Debian scraping it, and headless
 * Chromium from Debian driven by playwright-core. Each is started here and stopped by its own
 * PID; nothing is downloaded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { freePort, requireTool, stop } from "./procs.ts";

export interface Demo {
  /** The live page's base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code when the demo ends on its own (it stops its own anvil). */
  exited: Promise<number | null>;
}

/**
 * Starts `vigil demo ARGS` and resolves once it printed its live page URL. The demo must be
 * left to finish (it stops the anvil it started); `exited` says when.
 */
export async function startDemo(args: string[], timeoutMs = 60_000): Promise<Demo> {
  const proc = spawn(process.execPath, ["bin/vigil.js", "demo", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = /live page (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
    if (m) return { url: m[1]!, proc, output: () => out, exited };
    if (proc.exitCode !== null || Date.now() > end) {
      await stop(proc);
      throw new Error(`vigil demo did not print its live page URL:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Prometheus {
  url: string;
  proc: ChildProcess;
  /** Instant query; returns the result vector (throws on a PromQL or API error). */
  query(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/**
 * Prometheus from Debian on a free loopback port, scraping `target` (host:port) every second and
 * evaluating `ruleFiles` (absolute paths) every second.
 */
export async function prometheus(target: string, ruleFiles: string[] = []): Promise<Prometheus> {
  const bin = requireTool("prometheus", "prometheus");
  const dir = mkdtempSync(join(tmpdir(), "vigil-prom-"));
  const conf = join(dir, "prometheus.yml");
  writeFileSync(
    conf,
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "  evaluation_interval: 1s",
      ...(ruleFiles.length ? ["rule_files:", ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
      "scrape_configs:",
      "  - job_name: vigil",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const proc = spawn(
    bin,
    [
      `--config.file=${conf}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > end) {
      await stop(proc);
      throw new Error(`prometheus did not become ready:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    async query(q) {
      const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await r.json()) as {
        status: string;
        error?: string;
        data?: {
          resultType: string;
          result: Array<{ metric: Record<string, string>; value: [number, string] }>;
        };
      };
      if (body.status !== "success") throw new Error(`PromQL ${q}: ${body.error}`);
      return body.data!.resultType === "vector" ? body.data!.result : [];
    },
    stop: () => stop(proc),
  };
}

/**
 * Chromium from Debian (/usr/bin/chromium), headless, with the flags that keep it off the
 * network (/work/.library/env/machines/node.md): no background networking, updates or sync.
 */
export async function launchChromium(): Promise<Browser> {
  const bin = requireTool("chromium", "chromium");
  return chromium.launch({
    executablePath: bin,
    // playwright adds --headless and its own temporary --user-data-dir.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
