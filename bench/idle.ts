/**
 * `npm run bench -- idle [--root DIR] [--keep] [--min-s S] [--max-s S]`
 *
 * Idle memory of the installed service, as hardware/pi/README.md states it:
 *
 * 1. Installs the way a Pi does: `hardware/pi/install.sh --root DIR` (npm ci, tsc → dist/,
 *    npm prune --omit=dev, foreign native binaries removed) into a temporary root (or reuses
 *    `--root DIR` if it already holds an install: the install takes minutes).
 * 2. Creates the gateway key as the Pi guide does (`vigil keys init` with the installer's
 *    passphrase file), so sealing is on as in production.
 * 3. Starts the gateway exactly as the installed unit's ExecStart runs it: the unit's node, its
 *    `Environment=` lines (NODE_OPTIONS, VIGIL_DIST, NODE_ENV, ORT_DISABLE_TELEMETRY, the keystore
 *    passphrase file), `bin/vigil.js start --config …`. The config is the installed one with only
 *    what a test machine needs changed: dataDir in the temporary root, no serial ports (no
 *    devices), ports 0 for the embedded broker and the HTTP endpoint. No chain (no RPC).
 * 4. Lets it idle (embedded broker, models loaded, HTTP endpoint, no devices) and reads VmRSS
 *    from /proc/PID/status once a second until it settles: at least `--min-s` (30) s after
 *    "gateway started", and the last 10 samples within 1 MiB of each other (at most `--max-s`,
 *    180 s). The figure is the median of those 10 samples. The minimum matters: 10 s after start
 *    the samples already agree, but the process still shrinks by 10–25 MiB within the next 30 s.
 *
 * Baselines measured in the same run, the same way: the same config run from the TypeScript
 * sources (`bin/vigil.js` without VIGIL_DIST, through tsx, as `npx vigil start` runs in a
 * clone), and a bare `node -e` with the unit's environment (Node's own floor).
 * Last line: one JSON object.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packageRoot } from "../gateway/src/core/paths.ts";
import { stop } from "../test/helpers/procs.ts";
import { unitEnvironment } from "./lib/unit.ts";
import { benchOptions, num, UsageError } from "./lib/options.ts";

const a = benchOptions(
  import.meta.url,
  {
    root: { type: "string" },
    keep: { type: "boolean" },
    "min-s": { type: "string" },
    "max-s": { type: "string" },
  },
  (v) => {
    if (v.root === "") throw new UsageError("--root needs a directory");
    const minS = num("min-s", v["min-s"], 30, 0);
    const maxS = num("max-s", v["max-s"], 180, 1);
    if (maxS < minS) throw new UsageError(`--max-s (${maxS}) must be ≥ --min-s (${minS})`);
    return { root: v.root, keep: v.keep === true, minS, maxS };
  },
);
const MIN_S = a.minS;
const MAX_S = a.maxS;
const WINDOW = 10;
const SPREAD_KB = 1024;
const repo = packageRoot();

if (process.platform !== "linux") {
  console.error("bench idle reads /proc/PID/status: Linux only");
  process.exit(2);
}

const root = a.root ?? mkdtempSync(join(tmpdir(), "vigil-idle-"));
const prefix = join(root, "opt/vigil");
const installedMain = join(prefix, "dist/gateway/src/cli/main.js");
let installSeconds: number | null = null;
if (existsSync(installedMain)) {
  console.log(`reusing the install in ${prefix}`);
} else {
  console.log(`installing into ${root} (hardware/pi/install.sh --root; npm ci + build take minutes)…`);
  const t0 = performance.now();
  const r = spawnSync("bash", [join(repo, "hardware/pi/install.sh"), "--root", root], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0) {
    console.error(`install.sh exited ${r.status}`);
    process.exit(1);
  }
  installSeconds = (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------------
// the unit, as install.sh wrote it

const unitText = readFileSync(join(root, "etc/systemd/system/vigil.service"), "utf8");
const unitLines = unitText.split("\n").map((l) => l.trim());
const execStart = unitLines.find((l) => l.startsWith("ExecStart="))?.slice("ExecStart=".length);
if (!execStart) throw new Error("the installed unit has no ExecStart=");
const [nodeBin, script, ...startArgs] = execStart.split(/\s+/) as [string, string, ...string[]];
const cfgAt = startArgs.indexOf("--config");
if (startArgs[0] !== "start" || cfgAt < 0 || startArgs.length !== cfgAt + 2)
  throw new Error(`unexpected ExecStart (want "node …/vigil.js start --config FILE"): ${execStart}`);
const passFile = join(root, "etc/vigil/keystore.pass");
/** The unit's Environment= lines; `%d/…` (the credentials folder) is where LoadCredential= puts the passphrase. */
const unitEnv = unitEnvironment(unitText);
if (unitEnv["VIGIL_KEYSTORE_PASSPHRASE_FILE"] !== undefined)
  unitEnv["VIGIL_KEYSTORE_PASSPHRASE_FILE"] = passFile;
// systemd starts the service with a clean environment: PATH and the unit's lines, nothing of ours.
const serviceEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...unitEnv };

// The installed config, with what a test machine needs changed (and nothing else).
const installedCfg = JSON.parse(readFileSync(join(root, "etc/vigil/config.json"), "utf8")) as Record<
  string,
  unknown
>;
function benchConfig(dataDir: string, file: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mqtt = (installedCfg.mqtt ?? {}) as Record<string, unknown>;
  const cfg = {
    ...installedCfg,
    dataDir,
    serial: [],
    mqtt: { ...mqtt, embedded: { ...((mqtt.embedded ?? {}) as object), port: 0 } },
    http: { ...((installedCfg.http ?? {}) as object), port: 0 },
  };
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

// ---------------------------------------------------------------------------------------------
// measuring

function status(pid: number): { rssKb: number; hwmKb: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rssKb: kb("VmRSS"), hwmKb: kb("VmHWM") };
}

interface Idle {
  name: string;
  /** Median VmRSS of the settled window, kB. */
  rssKb: number;
  /** VmHWM at the end (peak RSS, start-up included), kB. */
  hwmKb: number;
  /** Seconds from spawn to "gateway started" (0 for bare node). */
  startS: number;
  /** Seconds sampled after start until settled. */
  settledAfterS: number;
  settled: boolean;
  /** Models the gateway loaded (its "gateway started" line); empty for bare node. */
  models: string[];
}

async function idle(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp | null,
): Promise<Idle> {
  const t0 = performance.now();
  const p: ChildProcess = spawn(nodeBin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  p.stdout!.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  p.stderr!.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  let exited = false;
  p.once("exit", () => (exited = true));
  try {
    while (ready && !ready.test(out)) {
      if (exited) throw new Error(`${name} exited before starting:\n${out}`);
      if (performance.now() - t0 > 120_000) throw new Error(`${name} did not start in 120 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const startS = (performance.now() - t0) / 1000;
    const samples: number[] = [];
    const t1 = performance.now();
    let settled = false;
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      if (exited) throw new Error(`${name} exited while idle:\n${out}`);
      samples.push(status(p.pid!).rssKb);
      const w = samples.slice(-WINDOW);
      const elapsed = (performance.now() - t1) / 1000;
      settled = w.length === WINDOW && Math.max(...w) - Math.min(...w) <= SPREAD_KB;
      if ((settled && elapsed >= MIN_S) || elapsed >= MAX_S) break;
    }
    const w = samples.slice(-WINDOW).sort((x, y) => x - y);
    const started = out.split("\n").find((l) => ready?.test(l));
    const models = started ? ((JSON.parse(started) as { models?: string[] }).models ?? []) : [];
    return {
      models,
      name,
      rssKb: w[Math.floor(w.length / 2)]!,
      hwmKb: status(p.pid!).hwmKb,
      startS,
      settledAfterS: (performance.now() - t1) / 1000,
      settled,
    };
  } finally {
    await stop(p);
  }
}

/** Apparent size of a folder and everything in it, bytes (links not followed), as `du -s --apparent-size -B1`. */
function apparentBytes(dir: string): number {
  let n = lstatSync(dir).size;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? apparentBytes(p) : lstatSync(p).size;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// runs

const STARTED = /"msg":"gateway started"/;
const state = join(root, "var/lib/vigil");
const cfgInstalled = benchConfig(state, join(root, "etc/vigil/idle-bench.json"));
if (!existsSync(join(state, "gateway.key"))) {
  // Pi guide step 4, with the installed CLI and the installer's passphrase file.
  const r = spawnSync(nodeBin, [join(prefix, "bin/vigil.js"), "keys", "init", "--config", cfgInstalled], {
    env: serviceEnv,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`vigil keys init failed: ${r.stderr}`);
}
const srcData = mkdtempSync(join(tmpdir(), "vigil-idle-src-"));
const cfgSource = benchConfig(srcData, join(srcData, "config.json"));
const s = spawnSync(nodeBin, [join(repo, "bin/vigil.js"), "keys", "init", "--config", cfgSource], {
  env: { ...serviceEnv, VIGIL_DIST: "" },
  encoding: "utf8",
});
if (s.status !== 0) throw new Error(`vigil keys init (sources) failed: ${s.stderr}`);

const mapped = script.replace(/^\/opt\/vigil\//, `${prefix}/`);
const results: Idle[] = [];
try {
  results.push(
    await idle(
      "installed service (dist/, unit's ExecStart)",
      [mapped, "start", "--config", cfgInstalled],
      serviceEnv,
      STARTED,
    ),
  );
  results.push(
    await idle(
      "from source (tsx, same config and environment)",
      [join(repo, "bin/vigil.js"), "start", "--config", cfgSource],
      { ...serviceEnv, VIGIL_DIST: "" },
      STARTED,
    ),
  );
  results.push(
    await idle(
      "bare node -e (unit's environment)",
      ["-e", "setInterval(() => {}, 1 << 30)"],
      serviceEnv,
      null,
    ),
  );
} finally {
  rmSync(srcData, { recursive: true, force: true });
}
const installedBytes = apparentBytes(prefix);
const parts = [
  "node_modules",
  "node_modules/onnxruntime-node",
  "node_modules/ethers",
  "models",
  "models/data",
  "dist",
];
const partBytes = Object.fromEntries(
  parts.filter((p) => existsSync(join(prefix, p))).map((p) => [p, apparentBytes(join(prefix, p))]),
);
if (!a.keep && !a.root) rmSync(root, { recursive: true, force: true });

const [inst, src, bare] = results as [Idle, Idle, Idle];
const mib = (kb: number): string => (kb / 1024).toFixed(1);
console.log(
  `\nidle RSS (VmRSS, median of ${WINDOW} samples 1 s apart once within ${SPREAD_KB / 1024} MiB; ≥ ${MIN_S} s after start)`,
);
console.log(`node ${process.version} ${process.arch}; NODE_OPTIONS=${unitEnv.NODE_OPTIONS ?? ""}`);
console.log(
  `installed ${(installedBytes / 1e6).toFixed(1)} MB (du --apparent-size): ` +
    Object.entries(partBytes)
      .map(([p, b]) => `${p} ${(b / 1e6).toFixed(1)} MB`)
      .join(", "),
);
console.log(`models loaded: ${inst.models.join(", ") || "none"}`);
console.log("| run | VmRSS kB | MiB | peak (VmHWM) MiB | start s | settled after s | × installed |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of results)
  console.log(
    `| ${r.name} | ${r.rssKb} | ${mib(r.rssKb)} | ${mib(r.hwmKb)} | ${r.startS.toFixed(1)} | ${r.settledAfterS.toFixed(0)}${r.settled ? "" : " (not settled)"} | ${(r.rssKb / inst.rssKb).toFixed(2)} |`,
  );
console.log(
  JSON.stringify({
    bench: "idle",
    node: process.version,
    arch: process.arch,
    nodeOptions: unitEnv.NODE_OPTIONS ?? null,
    installedBytes,
    installedPartBytes: partBytes,
    installSeconds,
    installedRssKb: inst.rssKb,
    installedPeakKb: inst.hwmKb,
    installedSettled: inst.settled,
    models: inst.models,
    sourceRssKb: src.rssKb,
    sourceSettled: src.settled,
    bareNodeRssKb: bare.rssKb,
    sourceToInstalled: Number((src.rssKb / inst.rssKb).toFixed(3)),
    installedOverBareKb: inst.rssKb - bare.rssKb,
  }),
);
