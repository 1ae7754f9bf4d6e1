/**
 * The registry's allow/deny table on a real Mosquitto (Debian's 2.0), configured by the export
 * (access/mosquitto.ts): the same lines as test/access/embedded-attacks.test.ts where Mosquitto can
 * express them, and a revocation taking effect after re-export + SIGHUP. Mosquitto drops a denied
 * PUBLISH silently (MQTT 3.1.1 PUBACKs it anyway), so "refused" here means "never delivered" to a
 * subscriber that may read the topic (the gateway's user).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet } from "ethers";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { exportMosquitto } from "../../gateway/src/access/mosquitto.ts";
import { hashPassword } from "../../gateway/src/access/passwords.ts";
import { AUDITOR_ROLE_ID, type RegistryEventBody } from "../../gateway/src/chain/events.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import {
  connackCode,
  dataFrame,
  DEV_A,
  DEV_B,
  DEV_UNREG,
  GW,
  GW_NAME,
  helloFrame,
  hex8,
  SECRET,
  SITE,
  SITE_NAME,
  subackCodes,
} from "../access/rig.ts";
import { freePort, requireTool, stop } from "../helpers/procs.ts";

const GATEWAY_USER = "vigil-gateway";
const GATEWAY_SECRET = "gateway secret";
const READER_SECRET = "reader secret";

let dir: string;
let proc: ChildProcess;
let url: string;
let view: RegistryView;
let gateway: MqttClient;
const received: Array<{ topic: string; payload: Buffer }> = [];
const clients: MqttClient[] = [];
const reader = Wallet.createRandom().address.toLowerCase() as Hex;
const stranger = Wallet.createRandom().address.toLowerCase() as Hex;
let passwords: string;

function exportNow(): void {
  exportMosquitto({
    view,
    passwords,
    outDir: dir,
    site: SITE_NAME,
    gatewayName: GW_NAME,
    gatewayLine: hashPassword(GATEWAY_USER, GATEWAY_SECRET),
    ...(proc?.pid ? { pid: proc.pid } : {}),
  });
}

function apply(...events: RegistryEventBody[]): void {
  const v = view.clone();
  for (const e of events) v.apply(e);
  view = v;
}

async function client(username: string, password: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    clientId: `c-${clients.length}`,
    username,
    password,
    reconnectPeriod: 0,
  });
  clients.push(c);
  return c;
}

/** Publishes `n` marker frames from the gateway user to itself and waits for them: everything published before has been routed. */
let marker = 0;
async function flush(): Promise<void> {
  const m = `vigil/v1/${SITE_NAME}/${GW_NAME}/flush`;
  const id = String(++marker);
  await gateway.publishAsync(m, id, { qos: 1 });
  await vi.waitFor(() =>
    expect(received.some((r) => r.topic === m && r.payload.toString() === id)).toBe(true),
  );
}

const ingestOf = (topic: string): number => received.filter((r) => r.topic === topic).length;

beforeAll(async () => {
  const bin = requireTool("mosquitto", "mosquitto");
  dir = mkdtempSync(join(tmpdir(), "vigil-mosq-access-"));
  view = new RegistryView(GW);
  apply(
    {
      name: "GatewayRegistered",
      gatewayId: GW,
      site: SITE,
      keyType: "secp256k1",
      publicKey: `0x${"ab".repeat(20)}`,
    },
    { name: "SensorRegistered", gatewayId: GW, sensorId: DEV_A, keyType: "none", publicKey: "0x" },
    { name: "SensorRegistered", gatewayId: GW, sensorId: DEV_B, keyType: "none", publicKey: "0x" },
    {
      name: "GatewayAccessGranted",
      gatewayId: GW,
      reader,
      expiresAt: Math.floor(Date.now() / 1000) + 86_400,
    },
    { name: "RoleGranted", role: AUDITOR_ROLE_ID, account: `0x${"ad".repeat(20)}` },
  );
  passwords = [
    ...[DEV_A, DEV_B, DEV_UNREG].map((d) => hashPassword(hex8(d), SECRET)),
    hashPassword(reader, READER_SECRET),
    hashPassword(stranger, READER_SECRET),
  ].join("\n");
  exportNow();
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
      `password_file ${join(dir, "vigil.passwd")}`,
      `acl_file ${join(dir, "vigil.acl")}`,
      "max_packet_size 16384",
      "persistence false",
      "log_dest stderr",
      "",
    ].join("\n"),
  );
  proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  await vi.waitFor(
    () =>
      new Promise<void>((res, rej) => {
        const s = netConnect(port, "127.0.0.1", () => (s.end(), res()));
        s.on("error", () => rej(new Error(`mosquitto not listening yet: ${log}`)));
      }),
    { timeout: 5000, interval: 50 },
  );
  url = `mqtt://127.0.0.1:${port}`;
  gateway = await client(GATEWAY_USER, GATEWAY_SECRET);
  gateway.on("message", (topic, payload) => received.push({ topic, payload }));
  await gateway.subscribeAsync(["vigil/v1/ingest/#", `vigil/v1/${SITE_NAME}/${GW_NAME}/#`], { qos: 1 });
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await stop(proc);
  rmSync(dir, { recursive: true, force: true });
});

describe("the registry's access table on Mosquitto (export + SIGHUP)", () => {
  it("error: anonymous and wrong-password clients are refused at CONNECT", async () => {
    expect(await connackCode(url, { clientId: "anon" })).toBe(5);
    expect(await connackCode(url, { username: hex8(DEV_A), password: "wrong" })).toBeGreaterThanOrEqual(4);
    // A device with credentials that the registry does not list is not in the exported file.
    expect(await connackCode(url, { username: hex8(DEV_UNREG), password: SECRET })).toBeGreaterThanOrEqual(4);
  });

  it("a device's own frames reach the gateway; as another device, a forged HELLO, or on gateway topics they never do", async () => {
    const a = await client(hex8(DEV_A), SECRET);
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 1), { qos: 1 });
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, helloFrame(DEV_B), { qos: 1 });
    for (const t of [
      `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`,
      `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/health`,
      `vigil/v1/${SITE_NAME}/${GW_NAME}/status`,
      `vigil/v1/ingest/${hex8(DEV_A)}/nack`,
    ])
      await a.publishAsync(t, "fake", { qos: 1 });
    await flush();
    expect(ingestOf(`vigil/v1/ingest/${hex8(DEV_A)}`)).toBe(1);
    expect(ingestOf(`vigil/v1/ingest/${hex8(DEV_B)}`)).toBe(0);
    expect(received.filter((r) => r.payload.toString() === "fake")).toEqual([]);
  });

  it("error: a retained status cannot be overwritten by a device", async () => {
    const status = `vigil/v1/${SITE_NAME}/${GW_NAME}/status`;
    await gateway.publishAsync(status, "online", { qos: 1, retain: true });
    const a = await client(hex8(DEV_A), SECRET);
    await a.publishAsync(status, "offline", { qos: 1, retain: true });
    await flush();
    const r = await client(reader, READER_SECRET);
    const got = new Promise<string>((res) => r.once("message", (_t, p) => res(p.toString())));
    await r.subscribeAsync(status, { qos: 1 });
    expect(await got).toBe("online");
  });

  it("error: nothing outside a grant is delivered (Mosquitto 2.0.11 SUBACKs wildcards and filters at delivery); a reader not allowed cannot connect", async () => {
    const r = await client(reader, READER_SECRET);
    expect(await subackCodes(r, [`vigil/v1/${SITE_NAME}/${GW_NAME}/+/alert`])).toEqual([1]);
    const a = await client(hex8(DEV_A), SECRET);
    const codes = {
      reader: await subackCodes(r, ["#", "vigil/v1/ingest/+"]),
      device: await subackCodes(a, ["#"]),
    };
    // Mosquitto 2.0.11 grants wildcard filters and filters messages per ACL at delivery; record what it answers.
    expect(codes.reader.every((c) => c === 128 || c <= 1)).toBe(true);
    // Whatever the SUBACK, nothing outside the grant is delivered.
    const seen: string[] = [];
    r.on("message", (t) => seen.push(t));
    const b = await client(hex8(DEV_B), SECRET);
    await b.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 2), { qos: 1 });
    await flush();
    expect(seen.filter((t) => t.startsWith("vigil/v1/ingest/"))).toEqual([]);
    expect(await connackCode(url, { username: stranger, password: READER_SECRET })).toBeGreaterThanOrEqual(4);
    console.info(
      `mosquitto SUBACK codes: reader #, ingest/+ → ${codes.reader.join(",")}; device # → ${codes.device.join(",")}`,
    );
  });

  it("error: a sensor revoked mid-stream: after re-export and SIGHUP its frames no longer reach the gateway; earlier ones did", async () => {
    const b = await client(hex8(DEV_B), SECRET);
    const topic = `vigil/v1/ingest/${hex8(DEV_B)}`;
    const before = ingestOf(topic);
    await b.publishAsync(topic, dataFrame(DEV_B, 10), { qos: 1 });
    await flush();
    expect(ingestOf(topic)).toBe(before + 1);
    apply({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_B, status: "revoked" });
    // On SIGHUP Mosquitto 2.0 re-reads both files and disconnects clients whose user is gone.
    const gone = new Promise<void>((res) => b.once("close", () => res()));
    exportNow();
    await gone;
    expect(await connackCode(url, { username: hex8(DEV_B), password: SECRET })).toBeGreaterThanOrEqual(4);
  });

  it("error: a reader revoked mid-session stops receiving after re-export and SIGHUP", async () => {
    const r = await client(reader, READER_SECRET);
    const seen: string[] = [];
    r.on("message", (_t, p) => seen.push(p.toString()));
    await r.subscribeAsync(`vigil/v1/${SITE_NAME}/${GW_NAME}/+/alert`, { qos: 1 });
    const alert = `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`;
    await gateway.publishAsync(alert, "a1", { qos: 1 });
    await vi.waitFor(() => expect(seen).toContain("a1"));
    apply({ name: "GatewayAccessRevoked", gatewayId: GW, reader });
    exportNow();
    await vi.waitFor(
      async () => {
        const n = seen.length;
        await gateway.publishAsync(alert, "after", { qos: 1 });
        await flush();
        expect(seen.length).toBe(n);
      },
      { timeout: 5000, interval: 100 },
    );
  });

  it("error: 1,000 failed logins in a row; Mosquitto keeps serving a device", async () => {
    for (let i = 0; i < 1000; i++)
      expect(
        await connackCode(url, { clientId: `brute-${i}`, username: hex8(DEV_A), password: `g${i}` }),
      ).toBeGreaterThanOrEqual(4);
    const a = await client(hex8(DEV_A), SECRET);
    const topic = `vigil/v1/ingest/${hex8(DEV_A)}`;
    const n = ingestOf(topic);
    await a.publishAsync(topic, dataFrame(DEV_A, 99), { qos: 1 });
    await flush();
    expect(ingestOf(topic)).toBe(n + 1);
  });
});
