/**
 * The independent dashboard consumer (dashboard-client.ts, written from the alerts README alone)
 * against a real gateway: `vigil start` with the embedded broker on a free loopback port, fed by
 * `vigil sim --profile cwru` (healthy, then a bearing fault: machine alerts) with scripted
 * sensor faults (NaN on `rms`, `kurtosis` stuck: sensor-fault messages, never alerts).
 */
import type { ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { stop } from "../helpers/procs.ts";
import { spawnVigil, until, type VigilChild } from "../helpers/vigil-child.ts";
import {
  checkDashboard,
  checkDeviceStatusStream,
  checkRetained,
  connectDashboard,
  DASHBOARD_FILTERS,
  type Dashboard,
} from "./dashboard-client.ts";

const SITE = "plant-a";
const GATEWAY = "gw-docs";
const children: ChildProcess[] = [];
const vigil = (args: string[]): VigilChild => spawnVigil(children, args);
const dashboards: Dashboard[] = [];

afterAll(async () => {
  for (const d of dashboards) await d.close().catch(() => undefined);
  for (const p of children) await stop(p);
});

it("a dashboard written from the alerts README accepts every message of a live gateway", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "dashboard-"));
  const config = join(dataDir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir,
      site: SITE,
      attest: { enabled: false, gatewayName: GATEWAY },
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      log: { level: "info", statsIntervalMs: 0 },
    }),
  );
  const gateway = vigil(["start", "-c", config]);
  // With port 0 the broker's URL is in the "gateway started" log line (README, --mqtt-port).
  const url = await until(
    "gateway started",
    () => {
      if (gateway.exitCode !== null) throw new Error(gateway.log());
      const line = gateway
        .log()
        .split("\n")
        .find((l) => l.includes('"msg":"gateway started"'));
      return line && (JSON.parse(line) as { mqtt?: string }).mqtt;
    },
    30_000,
  );
  expect(url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
  const live = await until(
    "the embedded broker",
    () =>
      gateway.exitCode === null
        ? connectDashboard(url).catch(() => undefined)
        : Promise.reject(new Error(gateway.log())),
    30_000,
  ).catch((e: Error) => Promise.reject(new Error(`${e.message}: ${gateway.log()}`)));
  dashboards.push(live);
  expect(live.granted).toEqual(DASHBOARD_FILTERS);
  await until("online status", () => live.seen.some((m) => m.topic === `vigil/v1/${SITE}/${GATEWAY}/status`));
  // Device status alone on its own connection too: the stream a status-only dashboard sees.
  const statusOnly = await connectDashboard(url, {}, { "vigil/v1/+/+/+/status": 1 });
  dashboards.push(statusOnly);

  const sim = vigil([
    "sim", "--mqtt", url, "--profile", "cwru", "--devices", "2", "--rate", "0", "--frames", "300", "--seed", "7",
    "--sensor-fault", "nan:rms@20+5,stuck:kurtosis@60+30",
  ]); // prettier-ignore
  const ended = await until(
    "the simulator to finish",
    () => sim.exitCode !== null && { code: sim.exitCode },
  ).catch((e: Error) => Promise.reject(new Error(`${e.message}: ${sim.log()}`)));
  expect(ended.code, sim.log()).toBe(0);
  // Health and readings are throttled to 1 s: the last ones go out when their interval ends.
  let n = -1;
  let since = Date.now();
  await until("quiet topics", () => {
    if (live.seen.length !== n) [n, since] = [live.seen.length, Date.now()];
    return Date.now() - since > 2500;
  });

  const late = await connectDashboard(url);
  dashboards.push(late);
  const retainedTopics = new Set(
    live.seen.filter((m) => /\/(health|status)$/.test(m.topic)).map((m) => m.topic),
  );
  await until(
    "retained messages",
    () => new Set(late.seen.map((m) => m.topic)).size >= retainedTopics.size,
    5000,
  ).catch(() => undefined);
  const retainedProblems = checkRetained(live.seen, late.seen);

  await stop(gateway);
  await until("offline status", () => live.seen.some((m) => m.body.reason === "stop"), 5000).catch(
    () => undefined,
  );

  const kinds = new Set(live.seen.map((m) => m.body.type));
  for (const k of ["status", "device-status", "health", "alert", "sensor-fault", "reading"])
    expect(kinds).toContain(k);
  const problems = [
    ...checkDashboard(live.seen, { site: SITE, gateway: GATEWAY, readingsIntervalMs: 1000, stopped: true }),
    ...retainedProblems,
  ];
  // Every README rule holds on the live stream, device statuses and health on transitions
  // included (aedes alone drops them for live subscribers: see the last test of this file).
  expect(problems).toEqual([]);
  expect(checkDeviceStatusStream(live.seen, statusOnly.seen)).toEqual([]);
  expect(live.seen.filter((m) => m.body.type === "sensor-fault").length).toBeGreaterThanOrEqual(8);

  // The checks can fail: each tampered copy of the traffic breaks one README rule.
  const opts = { site: SITE, gateway: GATEWAY, readingsIntervalMs: 1000, stopped: true };
  const tamper = (kind: string, f: (b: Record<string, unknown>, m: (typeof live.seen)[0]) => void) => {
    const copy = live.seen.map((m) => ({ ...m, body: structuredClone(m.body) }));
    const m = copy.find((x) => x.body.type === kind)!;
    f(m.body, m);
    m.raw = JSON.stringify(m.body);
    return checkDashboard(copy, opts);
  };
  expect(tamper("alert", (b) => (b.id = `${String(b.id)}0`))).toContainEqual(
    expect.stringContaining("id is not"),
  );
  expect(tamper("alert", (_b, m) => (m.retain = true))).toEqual([
    expect.stringContaining("README says not retained"),
  ]);
  expect(tamper("sensor-fault", (b) => (b.severity = "critical"))[0]).toContain("schema");
  expect(tamper("health", (b) => ((b.model as { sha256: string }).sha256 = "0".repeat(64)))).toEqual([
    expect.stringContaining("not in the gateway status models"),
  ]);
}, 60_000);

it.fails(
  "aedes itself loses a retained QoS 1 message that a live one follows at once (why EmbeddedBroker.publish orders the gateway's publications)",
  async () => {
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      reconnectPeriod: 0,
    });
    try {
      const got: string[] = [];
      c.on("message", (t) => got.push(t));
      await c.subscribeAsync("vigil/#", { qos: 1 });
      // What the gateway does: a device status (retained), then at once a sensor fault (not retained).
      const pub = (topic: string, retain: boolean) =>
        new Promise<void>((r) =>
          broker.publish(
            { cmd: "publish", topic, payload: Buffer.from("{}"), qos: 1, retain, dup: false },
            () => r(),
          ),
        );
      await Promise.all([pub("vigil/a/status", true), pub("vigil/b/sensor-fault", false)]);
      await until("both messages", () => got.length >= 2, 2000);
    } finally {
      await c.endAsync();
      await new Promise((r) => server.close(r));
      await new Promise((r) => broker.close(() => r(undefined)));
    }
  },
);
