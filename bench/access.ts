/**
 * `npm run bench -- access [--seconds S] [--same-priority] [--flood N]` (default 5 s per phase; the attacker
 * process runs at nice 19 unless --same-priority)
 * A real device's frame-to-PUBACK latency on the embedded broker with registry access control,
 * quiet versus while hostile clients attack it, in the same run. The attackers run in a child
 * process (bench/probes/access-attacker.ts) so the figures are the gateway's, not the attacker's
 * own CPU: failed logins guessing a real device's password, forged reader tokens, oversized
 * PUBLISHes (1 MiB) with stolen device credentials, anonymous connects, and a connect flood
 * (`--flood N` raw TCP connections at once, default 256, each reconnecting as soon as it is
 * closed) — all together, then each
 * kind alone to show where the time goes. The sink is in memory: no fsync in the path (the durable
 * store adds a synced batch before the PUBACK; see gateway/src/access/README.md). Also reports the
 * event-loop delay, the time spent authenticating, the heap growth over the attack, the machine's
 * load and the broker's counters. Target (issue 10): every real frame acknowledged within 10 ms
 * during the attack (max and p99 ≤ 10 ms).
 * Last line: one JSON object with the figures.
 */
import { spawn } from "node:child_process";
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { loadavg, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import mqtt from "mqtt";
import { RegistryAdmission } from "../gateway/src/access/admission.ts";
import { RegistryBrokerPolicy } from "../gateway/src/access/broker-policy.ts";
import { hashPassword, PasswordFile } from "../gateway/src/access/passwords.ts";
import { vigilDomain } from "../gateway/src/chain/eip712.ts";
import { RegistryView } from "../gateway/src/chain/registry-view.ts";
import type { Hex } from "../gateway/src/core/hex.ts";
import { Ingest } from "../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../gateway/src/ingest/mqtt/embedded-broker.ts";
import { encodeFrame, FrameType } from "../gateway/src/protocol/frame.ts";
import type { AttackKind } from "./probes/access-attacker.ts";
import { benchOptions, int, positive } from "./lib/options.ts";

// A real garbage collection before each heap reading (the bench runs without --expose-gc).
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const a = benchOptions(
  import.meta.url,
  {
    seconds: { type: "string" },
    "same-priority": { type: "boolean" },
    flood: { type: "string" },
  },
  (v) => ({
    seconds: positive("seconds", v.seconds, 5),
    "same-priority": v["same-priority"] === true,
    flood: int("flood", v.flood, 256, 1),
  }),
);
const SECONDS = a.seconds;
/** Parallel connections of the connect flood (--flood, default 256). */
const FLOOD = a.flood;
const GW: Hex = `0x${"11".repeat(32)}`;
const DEV = 0x0a;
const hex8 = (d: number): string => d.toString(16).padStart(8, "0");

const view = new RegistryView(GW);
view.apply({ name: "GatewayRegistered", gatewayId: GW, site: GW, keyType: "none", publicKey: "0x" });
view.apply({ name: "SensorRegistered", gatewayId: GW, sensorId: DEV, keyType: "none", publicKey: "0x" });
/** A registered sensor whose credentials an attacker holds: it sends oversized PUBLISHes. */
const STOLEN = 0x0b;
view.apply({ name: "SensorRegistered", gatewayId: GW, sensorId: STOLEN, keyType: "none", publicKey: "0x" });
const state = { view, stale: false };
const ingest = new Ingest({ sink: new MemorySink(), admission: new RegistryAdmission(state) });
const policy = new RegistryBrokerPolicy({
  state,
  passwords: new PasswordFile(
    `${hashPassword(hex8(DEV), "secret")}\n${hashPassword(hex8(STOLEN), "stolen")}`,
  ),
  domain: vigilDomain(31337, `0x${"00".repeat(19)}01`),
  gatewayId: GW,
  site: "site-1",
  gatewayName: "gw-1",
});
// Time spent in the policy's authenticate (synchronous, on the event loop).
const auth = { calls: 0, ms: 0, maxMs: 0 };
const authenticate = policy.authenticate.bind(policy);
policy.authenticate = (...args) => {
  const t0 = performance.now();
  const r = authenticate(...args);
  const dt = performance.now() - t0;
  auth.calls++;
  auth.ms += dt;
  auth.maxMs = Math.max(auth.maxMs, dt);
  return r;
};
const broker = new EmbeddedBroker(ingest, { port: 0, limitLoopback: true, policy });
await broker.start();
const url = broker.url;
const device = await mqtt.connectAsync(url, { clientId: "real", username: hex8(DEV), password: "secret" });
let seq = 0;

/** PUBACK latencies of frames sent for `seconds`, one at a time, about one per millisecond. */
async function latencies(seconds: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const f = encodeFrame({
      type: FrameType.Data,
      deviceId: DEV,
      seq: ++seq,
      timestampUs: 0,
      flags: 0,
      values: Float32Array.of(i),
    });
    const t0 = performance.now();
    await device.publishAsync(`vigil/v1/ingest/${hex8(DEV)}`, f, { qos: 1 });
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 1)); // a busy device: ~1 kHz
  }
  return out.sort((x, y) => x - y);
}
const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

interface Phase {
  name: string;
  lat: number[];
  loopP99Ms: number;
  loopMaxMs: number;
  authCalls: number;
  authMs: number;
  authMaxMs: number;
  /** The gateway process's CPU time over the phase, % of one core. */
  cpuPct: number;
  attempts: Record<string, number>;
}

/** Measures SECONDS of frames while the attacker child runs `kinds` (none: quiet). */
async function phase(name: string, kinds: AttackKind[]): Promise<Phase> {
  let stopAttack = async (): Promise<Record<string, number>> => Promise.resolve({});
  if (kinds.length > 0) {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("./probes/access-attacker.ts", import.meta.url)),
        JSON.stringify({
          url,
          kinds,
          device: hex8(DEV),
          stolen: { username: hex8(STOLEN), password: "stolen" },
          floodLoops: FLOOD,
        }),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    // The attacker would be another machine: on this shared box it yields the CPU to the gateway
    // (--same-priority: it competes for the CPU like any process).
    if (!a["same-priority"]) setPriority(child.pid!, 19);
    const lines = createInterface({ input: child.stdout });
    const it = lines[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.value !== "ready") throw new Error(`attacker did not start: ${String(first.value)}`);
    stopAttack = async () => {
      child.stdin.end("stop\n");
      const last = await it.next();
      await new Promise((res) => (child.exitCode !== null ? res(null) : child.once("exit", res)));
      return JSON.parse(String(last.value)) as Record<string, number>;
    };
  }
  const a0 = { ...auth };
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lat = await latencies(SECONDS);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  const a1 = { ...auth };
  const attempts = await stopAttack();
  return {
    name,
    lat,
    loopP99Ms: eld.percentile(99) / 1e6,
    loopMaxMs: eld.max / 1e6,
    authCalls: a1.calls - a0.calls,
    authMs: a1.ms - a0.ms,
    authMaxMs: a1.maxMs,
    cpuPct: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
    attempts,
  };
}

const load0 = loadavg()[0]!;
await latencies(2); // warm-up (JIT, first GCs)
const quiet = await phase("quiet", []);
gc();
const heapBefore = process.memoryUsage().heapUsed;
const all = await phase("attack: all kinds", ["login", "token", "oversized", "anonymous", "flood"]);
gc();
const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
const single: Phase[] = [];
for (const k of ["login", "token", "oversized", "anonymous", "flood"] as const)
  single.push(await phase(`attack: ${k} only`, [k]));
const quietAfter = await phase("quiet again", []);
const load1 = loadavg()[0]!;

// What the durable store would add: it PUBACKs only after a synced batch (ingest README), so one
// fdatasync of this disk is the floor of a real frame's acknowledgement outside this benchmark.
const syncMs: number[] = [];
{
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-access-"));
  const fd = openSync(join(dir, "probe"), "w");
  for (let i = 0; i < 200; i++) {
    writeSync(fd, Buffer.alloc(256, i));
    const t0 = performance.now();
    fdatasyncSync(fd);
    syncMs.push(performance.now() - t0);
  }
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
  syncMs.sort((x, y) => x - y);
}
await device.endAsync();
const counters = broker.stats();
await broker.stop();

const fmt = (x: number): string => x.toFixed(2);
/** The slowest real frame's PUBACK over every attack phase (issue 10: within 10 ms). */
const attackMax = Math.max(...[all, ...single].map((p) => p.lat.at(-1)!));
const rows = [quiet, all, ...single, quietAfter].map((p) => [
  p.name,
  `${fmt(pct(p.lat, 0.5))} / ${fmt(pct(p.lat, 0.99))} / ${fmt(p.lat.at(-1)!)}`,
  `${fmt(p.loopP99Ms)} / ${fmt(p.loopMaxMs)}`,
  `${p.cpuPct.toFixed(0)} %`,
  p.authCalls === 0 ? "-" : `${p.authCalls} × ${fmt(p.authMs / p.authCalls)} (max ${fmt(p.authMaxMs)})`,
  Object.entries(p.attempts)
    .map(([k, v]) => `${k} ${v}`)
    .join(", "),
]);
const head = [
  "phase",
  "PUBACK ms p50 / p99 / max",
  "loop delay ms p99 / max",
  "gateway CPU",
  "authenticate ms",
  "attempts",
];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(
  `access benchmark (embedded broker, registry policy, attackers in a child process at ${a["same-priority"] ? "the same priority" : "nice 19"}; ${SECONDS} s per phase, QoS 1, one frame at a time at ~1 kHz; load ${load0.toFixed(1)} → ${load1.toFixed(1)})`,
);
for (const r of [head, ...rows]) console.log(`  ${r.map((c, i) => c.padEnd(w[i]!)).join("  ")}`);
console.log(
  `  p99 ratio attack / quiet: ${(pct(all.lat, 0.99) / pct(quiet.lat, 0.99)).toFixed(2)}; heap growth over the attack ${(heapGrowth / 1048576).toFixed(1)} MiB (after a full GC); refused: auth ${counters.authRefused}, too large ${counters.packetTooLarge}, connect rate ${counters.connectRateLimited}, too many connections ${counters.tooManyConnections}, shed at accept ${counters.acceptShed}`,
);
console.log(
  `  this disk: fdatasync p50 ${fmt(pct(syncMs, 0.5))} ms, p99 ${fmt(pct(syncMs, 0.99))} ms — added to every PUBACK by the durable store (the sink here is in memory)`,
);
const fig = (p: Phase): Record<string, number> => ({
  frames: p.lat.length,
  p50Ms: Number(pct(p.lat, 0.5).toFixed(3)),
  p99Ms: Number(pct(p.lat, 0.99).toFixed(3)),
  maxMs: Number(p.lat.at(-1)!.toFixed(3)),
  loopDelayP99Ms: Number(p.loopP99Ms.toFixed(3)),
  cpuPct: Number(p.cpuPct.toFixed(1)),
  authMeanMs: p.authCalls === 0 ? 0 : Number((p.authMs / p.authCalls).toFixed(4)),
});
console.log(
  JSON.stringify({
    bench: "access",
    seconds: SECONDS,
    attackerNice: a["same-priority"] ? 0 : 19,
    load: [Number(load0.toFixed(2)), Number(load1.toFixed(2))],
    quiet: fig(quiet),
    attack: { ...fig(all), attempts: all.attempts },
    byKind: Object.fromEntries(
      single.map((p) => [p.name.split(" ")[1]!, { ...fig(p), attempts: p.attempts }]),
    ),
    quietAfter: fig(quietAfter),
    fdatasyncMs: { p50: Number(pct(syncMs, 0.5).toFixed(3)), p99: Number(pct(syncMs, 0.99).toFixed(3)) },
    p99Ratio: Number((pct(all.lat, 0.99) / pct(quiet.lat, 0.99)).toFixed(3)),
    authRefused: counters.authRefused,
    packetTooLarge: counters.packetTooLarge,
    connectRateLimited: counters.connectRateLimited,
    tooManyConnections: counters.tooManyConnections,
    acceptShed: counters.acceptShed,
    floodConnections: FLOOD,
    heapGrowthBytes: heapGrowth,
    attackMaxMs: Number(attackMax.toFixed(3)),
    targets: { attackP99Ms: 10, attackMaxMs: 10 },
    pass: pct(all.lat, 0.99) <= 10 && attackMax <= 10,
  }),
);
