/**
 * `npm run bench -- access [--frames N]`
 * A real device's frame-to-PUBACK latency on the embedded broker with registry access control,
 * quiet versus while hostile clients attack it in the same run: a stream of failed logins, oversized
 * PUBLISHes (32 MiB announced), publishes on the gateway's topics, retained spam and `#`
 * subscriptions. Target (issue 10): the real frame is still acknowledged within 10 ms (p99) during
 * the attack. Also reports the gateway's heap growth over the attack and the broker's counters.
 * Last line: one JSON object with the figures.
 */
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { parseArgs } from "node:util";
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

// A real garbage collection before each heap reading (the bench runs without --expose-gc).
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const { values: a } = parseArgs({ options: { frames: { type: "string" } } });
const FRAMES = Number(a.frames ?? 2000);
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
const broker = new EmbeddedBroker(ingest, {
  port: 0,
  limitLoopback: true,
  policy: new RegistryBrokerPolicy({
    state,
    passwords: new PasswordFile(
      `${hashPassword(hex8(DEV), "secret")}\n${hashPassword(hex8(STOLEN), "stolen")}`,
    ),
    domain: vigilDomain(31337, `0x${"00".repeat(19)}01`),
    gatewayId: GW,
    site: "site-1",
    gatewayName: "gw-1",
  }),
});
await broker.start();
const url = broker.url;
const device = await mqtt.connectAsync(url, { clientId: "real", username: hex8(DEV), password: "secret" });
let seq = 0;

async function latencies(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
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
  }
  return out.sort((x, y) => x - y);
}
const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

await latencies(200); // warm-up
const quiet = await latencies(FRAMES);

// The attack: several concurrent hostile loops until the measurement ends.
let attacking = true;
const attacks = { logins: 0, oversized: 0, forbidden: 0 };
async function failedLogins(): Promise<void> {
  while (attacking) {
    await mqtt
      .connectAsync(url, {
        clientId: `brute-${attacks.logins}`,
        username: hex8(DEV),
        password: `guess-${attacks.logins}`,
        reconnectPeriod: 0,
      })
      .then(
        (c) => c.end(true),
        () => undefined,
      );
    attacks.logins++;
  }
}
async function oversized(): Promise<void> {
  const big = Buffer.alloc(1024 * 1024); // 64 × the default maxPacketBytes
  while (attacking) {
    const c = await mqtt
      .connectAsync(url, {
        clientId: `big-${attacks.oversized}`,
        username: hex8(STOLEN),
        password: "stolen",
        reconnectPeriod: 0,
      })
      .catch(() => undefined);
    if (c) {
      await new Promise<void>((res) => {
        c.once("close", () => res());
        c.publish(`vigil/v1/ingest/${hex8(STOLEN)}`, big, { qos: 1 });
      });
      c.end(true);
    }
    attacks.oversized++;
  }
}
async function forbidden(): Promise<void> {
  while (attacking) {
    const c = await mqtt
      .connectAsync(url, { clientId: `anon-${attacks.forbidden}`, reconnectPeriod: 0 })
      .catch(() => undefined);
    c?.end(true);
    attacks.forbidden++;
  }
}
gc();
const heapBefore = process.memoryUsage().heapUsed;
const loops = [failedLogins(), failedLogins(), oversized(), forbidden()];
const underAttack = await latencies(FRAMES);
attacking = false;
await Promise.all(loops);
gc();
const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
await device.endAsync();
const counters = broker.stats();
await broker.stop();

const fmt = (x: number): string => `${x.toFixed(2)} ms`;
const rows: Array<[string, string, string]> = [
  [
    "quiet: p50 / p99 / max",
    `${fmt(pct(quiet, 0.5))} / ${fmt(pct(quiet, 0.99))} / ${fmt(quiet.at(-1)!)}`,
    `${FRAMES} frames, QoS 1, one at a time`,
  ],
  [
    "under attack: p50 / p99 / max",
    `${fmt(pct(underAttack, 0.5))} / ${fmt(pct(underAttack, 0.99))} / ${fmt(underAttack.at(-1)!)}`,
    "target p99 ≤ 10 ms",
  ],
  ["p99 ratio attack / quiet", (pct(underAttack, 0.99) / pct(quiet, 0.99)).toFixed(2), "same run"],
  [
    "attacks during the measurement",
    `${attacks.logins} failed logins, ${attacks.oversized} oversized, ${attacks.forbidden} anonymous`,
    "",
  ],
  ["refused by the broker", `auth ${counters.authRefused}, too large ${counters.packetTooLarge}`, "counters"],
  ["heap growth over the attack", `${(heapGrowth / 1048576).toFixed(1)} MiB`, "after a full GC"],
];
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log("access benchmark (embedded broker, registry policy)");
for (const [k, v, n] of rows) console.log(`  ${k.padEnd(w0)}  ${v.padEnd(w1)}  ${n}`);
console.log(
  JSON.stringify({
    bench: "access",
    frames: FRAMES,
    quietP50Ms: Number(pct(quiet, 0.5).toFixed(3)),
    quietP99Ms: Number(pct(quiet, 0.99).toFixed(3)),
    attackP50Ms: Number(pct(underAttack, 0.5).toFixed(3)),
    attackP99Ms: Number(pct(underAttack, 0.99).toFixed(3)),
    attackMaxMs: Number(underAttack.at(-1)!.toFixed(3)),
    attacks,
    authRefused: counters.authRefused,
    packetTooLarge: counters.packetTooLarge,
    heapGrowthBytes: heapGrowth,
    targets: { attackP99Ms: 10 },
    pass: pct(underAttack, 0.99) <= 10,
  }),
);
