/**
 * The registry's allow/deny table on a real Mosquitto (Debian's 2.0), configured by the export
 * (access/mosquitto.ts: password file, reloaded by SIGHUP) and the dynamic-security plugin
 * (access/mosquitto-dynsec.ts: ACLs, synced by commands): the same lines as
 * test/access/embedded-attacks.test.ts where Mosquitto can express them, and revocations taking
 * effect. Mosquitto drops a denied PUBLISH (MQTT 3.1.1 PUBACKs it anyway; MQTT 5 PUBACKs 0x87),
 * so "refused" here means "never delivered" to a subscriber that may read the topic (the
 * gateway's user). mqtt.js here; the same table with mosquitto_pub/mosquitto_sub:
 * test/interop/mosquitto-clients-access.test.ts.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet } from "ethers";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { exportMosquitto, exportUsers } from "../../gateway/src/access/mosquitto.ts";
import { accessMosquitto, type AccessMosquitto } from "../helpers/mosquitto-access.ts";
import { dynsecState, syncDynsec } from "../../gateway/src/access/mosquitto-dynsec.ts";
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

const GATEWAY_USER = "vigil-gateway";
const GATEWAY_SECRET = "gateway secret";
const READER_SECRET = "reader secret";

let dir: string;
let broker: AccessMosquitto;
let proc: ChildProcess | undefined;
let url = "";
let view: RegistryView;
let gateway: MqttClient;
const received: Array<{ topic: string; payload: Buffer }> = [];
const clients: MqttClient[] = [];
const reader = Wallet.createRandom().address.toLowerCase() as Hex;
const stranger = Wallet.createRandom().address.toLowerCase() as Hex;
let passwords: string;

const gatewayLine = hashPassword(GATEWAY_USER, GATEWAY_SECRET);

/**
 * What the running gateway does after a registry change (runtime.ts): sync the plugin first (new
 * users get their ACLs before the password file lets them in), then rewrite the files and SIGHUP.
 */
async function exportNow(): Promise<void> {
  const o = {
    view,
    passwords,
    site: SITE_NAME,
    gatewayName: GW_NAME,
    gatewayLine,
  };
  if (url)
    await syncDynsec({
      url,
      username: GATEWAY_USER,
      password: GATEWAY_SECRET,
      desired: dynsecState(exportUsers(o)),
    });
  exportMosquitto({ ...o, outDir: dir, ...(proc?.pid ? { pid: proc.pid } : {}) });
}

/** Resolves once a login as `username` is refused (Mosquitto has processed the SIGHUP). */
async function refused(username: string, password: string): Promise<void> {
  await vi.waitFor(
    async () => expect(await connackCode(url, { username, password })).toBeGreaterThanOrEqual(4),
    { timeout: 5000, interval: 50 },
  );
}

function apply(...events: RegistryEventBody[]): void {
  const v = view.clone();
  for (const e of events) v.apply(e);
  view = v;
}

async function client(username: string, password: string, protocolVersion: 4 | 5 = 4): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    clientId: `c-${clients.length}`,
    username,
    password,
    reconnectPeriod: 0,
    protocolVersion,
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
  await exportNow();
  broker = await accessMosquitto(dir);
  proc = broker.proc;
  url = broker.url;
  gateway = await client(GATEWAY_USER, GATEWAY_SECRET);
  gateway.on("message", (topic, payload) => received.push({ topic, payload }));
  await gateway.subscribeAsync(["vigil/v1/ingest/#", `vigil/v1/${SITE_NAME}/${GW_NAME}/#`], { qos: 1 });
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
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

  it("error: a SUBSCRIBE outside the grant gets SUBACK 0x80 (MQTT 3.1.1) and reason 0x87 (MQTT 5); nothing outside it is delivered; a reader not allowed cannot connect", async () => {
    const r = await client(reader, READER_SECRET);
    const own = `vigil/v1/${SITE_NAME}/${GW_NAME}`;
    expect(await subackCodes(r, [`${own}/+/alert`, "#", "vigil/v1/ingest/+", "$SYS/#"])).toEqual([
      1, 128, 128, 128,
    ]);
    const a = await client(hex8(DEV_A), SECRET);
    expect(
      await subackCodes(a, [
        "#",
        `vigil/v1/ingest/${hex8(DEV_A)}/nack`,
        `vigil/v1/ingest/${hex8(DEV_B)}/nack`,
      ]),
    ).toEqual([128, 1, 128]);
    const r5 = await client(reader, READER_SECRET, 5);
    expect(await subackCodes(r5, ["#", `${own}/status`])).toEqual([0x87, 1]);
    const seen: string[] = [];
    r.on("message", (t) => seen.push(t));
    const b = await client(hex8(DEV_B), SECRET);
    await b.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 2), { qos: 1 });
    await flush();
    expect(seen.filter((t) => t.startsWith("vigil/v1/ingest/"))).toEqual([]);
    expect(await connackCode(url, { username: stranger, password: READER_SECRET })).toBeGreaterThanOrEqual(4);
  });

  it("error: a PUBLISH outside the grant is refused with PUBACK reason 0x87 to an MQTT 5 client (3.1.1 has no negative PUBACK)", async () => {
    const a5 = await client(hex8(DEV_A), SECRET, 5);
    // mqtt.js rejects a negative PUBACK with the reason code.
    await expect(
      a5.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 3), { qos: 1 }),
    ).rejects.toMatchObject({ code: 0x87 });
    await a5.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 3), { qos: 1 });
  });

  it("a reader granted after the broker started can read once the registry change is exported", async () => {
    const late = Wallet.createRandom().address.toLowerCase() as Hex;
    passwords += `\n${hashPassword(late, READER_SECRET)}`;
    expect(await connackCode(url, { username: late, password: READER_SECRET })).toBeGreaterThanOrEqual(4);
    apply({
      name: "GatewayAccessGranted",
      gatewayId: GW,
      reader: late,
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
    });
    await exportNow();
    // SIGHUP is asynchronous: the broker has reloaded once the new user can connect.
    const r = await vi.waitFor(() => client(late, READER_SECRET), { timeout: 5000, interval: 50 });
    expect(await subackCodes(r, [`vigil/v1/${SITE_NAME}/${GW_NAME}/#`, "#"])).toEqual([1, 128]);
  });

  it("error: a sensor revoked mid-stream: after re-export and SIGHUP its frames no longer reach the gateway; earlier ones did", async () => {
    const b = await client(hex8(DEV_B), SECRET);
    const topic = `vigil/v1/ingest/${hex8(DEV_B)}`;
    const before = ingestOf(topic);
    await b.publishAsync(topic, dataFrame(DEV_B, 10), { qos: 1 });
    await flush();
    expect(ingestOf(topic)).toBe(before + 1);
    apply({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_B, status: "revoked" });
    // The plugin's deleteClient disconnects the session; on SIGHUP Mosquitto 2.0 re-reads the
    // password file (and would disconnect users no longer in it).
    const gone = new Promise<void>((res) => b.once("close", () => res()));
    await exportNow();
    await gone;
    await refused(hex8(DEV_B), SECRET);
  });

  it("error: a reader revoked mid-session is disconnected, cannot reconnect, and receives nothing more", async () => {
    const r = await client(reader, READER_SECRET);
    const seen: string[] = [];
    r.on("message", (_t, p) => seen.push(p.toString()));
    await r.subscribeAsync(`vigil/v1/${SITE_NAME}/${GW_NAME}/+/alert`, { qos: 1 });
    const alert = `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`;
    await gateway.publishAsync(alert, "a1", { qos: 1 });
    await vi.waitFor(() => expect(seen).toContain("a1"));
    apply({ name: "GatewayAccessRevoked", gatewayId: GW, reader });
    const gone = new Promise<void>((res) => r.once("close", () => res()));
    await exportNow();
    await gone;
    await gateway.publishAsync(alert, "after", { qos: 1 });
    await flush();
    expect(seen).toEqual(["a1"]);
    await refused(reader, READER_SECRET);
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
