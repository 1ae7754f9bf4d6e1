/**
 * The attack table of issue 10 on the embedded broker, with real mqtt.js clients: each line is one
 * test. Registry changes are applied to the view the way a registry refresh swaps it in
 * (the refresh itself: test/access/watch.test.ts).
 */
import { connect as netConnect } from "node:net";
import mqtt from "mqtt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { NackReason, decodeFrame } from "../../gateway/src/protocol/frame.ts";
import {
  accessRig,
  closed,
  connackCode,
  dataFrame,
  DEV_A,
  DEV_B,
  DEV_K1,
  DEV_P256,
  DEV_UNREG,
  DOMAIN,
  GW,
  GW_NAME,
  helloFrame,
  hex8,
  KEY_K1,
  KEY_P256,
  OTHER_GW,
  SECRET,
  SITE_NAME,
  subackCodes,
  type AccessRig,
} from "./rig.ts";
import { mintDeviceToken } from "../../gateway/src/access/device-token.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { generateKey, registrationPublicKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";

let rig: AccessRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

const STATUS = `vigil/v1/${SITE_NAME}/${GW_NAME}/status`;
/** An MQTT 3.1.1 CONNECT without credentials, clean session, client id "f" [MQTT-3.1]. */
const ANON_CONNECT = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 1, 0x66]);

describe("embedded broker access: who may connect", () => {
  it("error: an anonymous client is refused with CONNACK 5 (not authorised)", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, { clientId: "anon" })).toBe(5);
    expect(rig.broker.access.authRefused).toBe(1);
    expect(rig.policy.refusals).toEqual({ anonymous: 1 });
  });

  it("error: a device with a wrong password is refused with CONNACK 4 (bad credentials)", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, { username: hex8(DEV_A), password: "wrong" })).toBe(4);
    expect(rig.policy.refusals).toEqual({ device_password: 1 });
  });

  it("error: 1,000 failed logins in a row: each refused and counted, only the first hashed (backoff), memory stays bounded, a device keeps being served", async () => {
    let nowSec = Math.floor(Date.now() / 1000);
    rig = await accessRig({ nowSec: () => nowSec });
    const dev = await rig.device(DEV_A);
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1000; i++)
      expect(
        await connackCode(rig.url, { clientId: `brute-${i}`, username: hex8(DEV_B), password: `guess-${i}` }),
      ).toBe(4);
    global.gc?.();
    const grown = process.memoryUsage().heapUsed - before;
    // The clock stands still: one costly check, then the backoff refuses the rest unchecked.
    expect(rig.policy.refusals).toEqual({ device_password: 1, throttled: 999 });
    expect(rig.broker.access.authRefused).toBe(1000);
    expect(rig.broker.clients()).toBe(1); // nothing is kept per refused client
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    await dev.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    expect(rig.sink.records.map((r) => r.seq)).toEqual([1]);
    // Within the backoff even the right secret is refused from that address; after it, accepted.
    expect(await connackCode(rig.url, { username: hex8(DEV_B), password: SECRET })).toBe(4);
    nowSec += 1;
    expect(await connackCode(rig.url, { username: hex8(DEV_B), password: SECRET })).toBe(0);
  });

  it("error: failed-login backoff is per username: other devices and readers are checked as usual; a reader the registry does not allow is refused (5) before any signature is recovered", async () => {
    const nowSec = Math.floor(Date.now() / 1000);
    rig = await accessRig({ nowSec: () => nowSec });
    expect(await connackCode(rig.url, { username: hex8(DEV_B), password: "guess" })).toBe(4);
    expect(await connackCode(rig.url, { username: hex8(DEV_B), password: "guess" })).toBe(4);
    expect(await connackCode(rig.url, { username: hex8(DEV_A), password: SECRET })).toBe(0);
    // A forged token (well-formed, random signature) for an address without a grant.
    const forged = `vrt1.${nowSec + 600}.0x${"ab".repeat(64)}1b`;
    expect(await connackCode(rig.url, { username: rig.stranger.address, password: forged })).toBe(5);
    // Another key's token under an allowed reader's address: recovered once, then in backoff.
    const { password } = await rig.token(rig.stranger);
    const reader = rig.reader.address;
    expect(await connackCode(rig.url, { username: reader, password })).toBe(4);
    expect(await connackCode(rig.url, { username: reader, password })).toBe(4);
    expect(rig.policy.refusals).toEqual({
      device_password: 1,
      throttled: 2,
      reader_not_allowed: 1,
      token_wrong_signer: 1,
    });
  });
});

describe("embedded broker access: who may send", () => {
  it("error: publishing as another device disconnects the client and stores nothing", async () => {
    rig = await accessRig();
    const a = await rig.device(DEV_A);
    const gone = closed(a);
    a.publish(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 1), { qos: 1 });
    await gone;
    expect(rig.sink.records).toEqual([]);
    expect(rig.broker.access.publishRefusedBy).toEqual({ not_own_topic: 1 });
  });

  it("error: a forged HELLO for another device is refused; the real device's schema is untouched", async () => {
    rig = await accessRig();
    const a = await rig.device(DEV_A);
    const gone = closed(a);
    a.publish(`vigil/v1/ingest/${hex8(DEV_B)}`, helloFrame(DEV_B), { qos: 1 });
    await gone;
    expect(rig.ingest.counters.devices.get(DEV_B)?.profile).toBeUndefined();
    // The same HELLO from the device itself is accepted.
    const b = await rig.device(DEV_B);
    await b.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, helloFrame(DEV_B), { qos: 1 });
    expect(rig.ingest.counters.devices.get(DEV_B)?.profile).toBe("forged");
  });

  for (const topic of [
    `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`,
    `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/health`,
    STATUS,
    `vigil/v1/ingest/${hex8(DEV_A)}/nack`,
    "hostile/relay",
  ])
    it(`error: a device publishing on ${topic} is disconnected`, async () => {
      rig = await accessRig();
      const a = await rig.device(DEV_A);
      const gone = closed(a);
      a.publish(topic, "fake", { qos: 1 });
      await gone;
      expect(rig.broker.access.publishRefused).toBe(1);
    });

  it("error: a retained status cannot be overwritten; later subscribers get the gateway's", async () => {
    rig = await accessRig();
    rig.broker.publish(STATUS, "online", { qos: 1, retain: true });
    const a = await rig.device(DEV_A);
    const gone = closed(a);
    a.publish(STATUS, "offline", { qos: 1, retain: true });
    await gone;
    const t = await rig.token(rig.reader);
    const r = await rig.connect(t);
    const got = new Promise<string>((res) => r.once("message", (_t, p) => res(p.toString())));
    await r.subscribeAsync(STATUS, { qos: 1 });
    expect(await got).toBe("online");
    expect(rig.broker.access.publishRefusedBy).toEqual({ retain: 1 });
  });

  it("error: an unregistered sensor is NACKed UNKNOWN_DEVICE; a revoked one mid-stream REVOKED_DEVICE, earlier frames stay stored", async () => {
    rig = await accessRig();
    const nacks: number[] = [];
    const u = await rig.device(DEV_UNREG);
    await u.subscribeAsync(`vigil/v1/ingest/${hex8(DEV_UNREG)}/nack`, { qos: 1 });
    u.on("message", (_t, p) => nacks.push((decodeFrame(p) as { reason: number }).reason));
    await u.publishAsync(`vigil/v1/ingest/${hex8(DEV_UNREG)}`, dataFrame(DEV_UNREG, 1), { qos: 1 });
    await expect.poll(() => nacks).toEqual([NackReason.UNKNOWN_DEVICE]);

    const a = await rig.device(DEV_A);
    const aNacks: number[] = [];
    await a.subscribeAsync(`vigil/v1/ingest/${hex8(DEV_A)}/nack`, { qos: 1 });
    a.on("message", (_t, p) => aNacks.push((decodeFrame(p) as { reason: number }).reason));
    for (let s = 1; s <= 3; s++)
      await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, s), { qos: 1 });
    rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_A, status: "revoked" });
    for (let s = 4; s <= 5; s++)
      await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, s), { qos: 1 });
    await expect.poll(() => aNacks).toEqual([NackReason.REVOKED_DEVICE, NackReason.REVOKED_DEVICE]);
    expect(rig.sink.records.filter((r) => r.deviceId === DEV_A).map((r) => r.seq)).toEqual([1, 2, 3]);
    // Resumed: accepted again at the next refresh.
    rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_A, status: "active" });
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 6), { qos: 1 });
    expect(rig.sink.records.filter((r) => r.deviceId === DEV_A).map((r) => r.seq)).toEqual([1, 2, 3, 6]);
  });
});

describe("embedded broker access: sensors with a registered key (device tokens)", () => {
  const now = (): number => Math.floor(Date.now() / 1000);
  for (const [name, id, key] of [
    ["secp256k1", DEV_K1, KEY_K1],
    ["P-256", DEV_P256, KEY_P256],
  ] as const)
    it(`a ${name} sensor connects with a token signed by its registered key and sends its frames`, async () => {
      rig = await accessRig();
      const c = await rig.connect(mintDeviceToken(key, DOMAIN, GW, id, now() + 600));
      await c.publishAsync(`vigil/v1/ingest/${hex8(id)}`, dataFrame(id, 1), { qos: 1 });
      expect(rig.sink.records.map((r) => r.deviceId)).toEqual([id]);
    });

  it("error: a token signed by another key, for another device, expired, too long, or for a keyless sensor is refused (4)", async () => {
    rig = await accessRig({ failedLoginBackoffMs: 0 }); // every attempt checked (backoff: below)
    const other = generateKey("secp256k1");
    expect(await connackCode(rig.url, mintDeviceToken(other, DOMAIN, GW, DEV_K1, now() + 600))).toBe(4);
    const forB = mintDeviceToken(KEY_K1, DOMAIN, GW, DEV_K1, now() + 600);
    expect(await connackCode(rig.url, { username: hex8(DEV_P256), password: forB.password })).toBe(4);
    expect(await connackCode(rig.url, mintDeviceToken(KEY_K1, DOMAIN, GW, DEV_K1, now() - 1))).toBe(4);
    expect(await connackCode(rig.url, mintDeviceToken(KEY_K1, DOMAIN, GW, DEV_K1, now() + 2 * 86_400))).toBe(
      4,
    );
    expect(await connackCode(rig.url, mintDeviceToken(other, DOMAIN, GW, DEV_A, now() + 600))).toBe(4);
    expect(await connackCode(rig.url, mintDeviceToken(KEY_K1, DOMAIN, OTHER_GW, DEV_K1, now() + 600))).toBe(
      4,
    );
    expect(rig.policy.refusals).toEqual({
      device_token_wrong_signer: 3,
      device_token_expired: 1,
      device_token_too_long: 1,
      device_token_no_key: 1,
    });
  });

  it("error: a key rotated on chain to another key: the old key's token holder is disconnected at the next sweep and its token refused (4) after; the new key's token connects", async () => {
    rig = await accessRig({ failedLoginBackoffMs: 0 });
    const old = mintDeviceToken(KEY_K1, DOMAIN, GW, DEV_K1, now() + 600);
    const c = await rig.connect(old);
    expect(rig.broker.sweep()).toBe(0);
    const next = generateKey("secp256k1");
    rig.chain({
      name: "SensorKeyChanged",
      gatewayId: GW,
      sensorId: DEV_K1,
      keyType: "secp256k1",
      publicKey: registrationPublicKey(next),
    });
    const gone = closed(c);
    expect(rig.broker.sweep()).toBe(1);
    await gone;
    expect(await connackCode(rig.url, old)).toBe(4);
    const n = await rig.connect(mintDeviceToken(next, DOMAIN, GW, DEV_K1, now() + 600));
    expect(rig.broker.sweep()).toBe(0);
    // The key removed: no token holder stays.
    rig.chain({
      name: "SensorKeyChanged",
      gatewayId: GW,
      sensorId: DEV_K1,
      keyType: "none",
      publicKey: "0x",
    });
    const nGone = closed(n);
    expect(rig.broker.sweep()).toBe(1);
    await nGone;
  });

  it("security: a sensor with a registered key must log in with its key: a key registered on chain ends its password session at the next sweep, and its password is refused (4) from then on", async () => {
    rig = await accessRig({ failedLoginBackoffMs: 0 });
    const c = await rig.device(DEV_A);
    expect(rig.broker.sweep()).toBe(0);
    const key = generateKey("p256");
    rig.chain({
      name: "SensorKeyChanged",
      gatewayId: GW,
      sensorId: DEV_A,
      keyType: "p256",
      publicKey: registrationPublicKey(key),
    });
    const gone = closed(c);
    expect(rig.broker.sweep()).toBe(1);
    await gone;
    expect(await connackCode(rig.url, { username: hex8(DEV_A), password: SECRET })).toBe(4);
    expect(rig.policy.refusals).toEqual({ device_key_required: 1 });
    // Its key's token connects.
    await rig.connect(mintDeviceToken(key, DOMAIN, GW, DEV_A, now() + 600));
    expect(rig.broker.sweep()).toBe(0);
  });

  it("error: a sensor suspended or revoked on chain: a new session is refused (5), token or password; a connected one stays (admission NACKs its frames); resumed, it connects again", async () => {
    rig = await accessRig();
    const token = mintDeviceToken(KEY_K1, DOMAIN, GW, DEV_K1, now() + 600);
    const c = await rig.connect(token);
    rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_K1, status: "revoked" });
    rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_A, status: "suspended" });
    expect(rig.broker.sweep()).toBe(0);
    expect(c.connected).toBe(true);
    expect(await connackCode(rig.url, token)).toBe(5);
    await expect(rig.device(DEV_A, { reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/i);
    expect(rig.policy.refusals).toMatchObject({ device_revoked: 2 });
    rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: DEV_K1, status: "active" });
    const again = await rig.connect(token);
    await again.publishAsync(`vigil/v1/ingest/${hex8(DEV_K1)}`, dataFrame(DEV_K1, 1), { qos: 1 });
    expect(rig.sink.records.map((r) => r.deviceId)).toEqual([DEV_K1]);
  });
});

describe("embedded broker access: who may read", () => {
  it("a granted reader subscribes to its gateway's topics; # and $SYS get SUBACK 0x80", async () => {
    rig = await accessRig();
    const r = await rig.connect(await rig.token(rig.reader));
    expect(await subackCodes(r, [`vigil/v1/${SITE_NAME}/${GW_NAME}/+/alert`])).toEqual([1]);
    expect(await subackCodes(r, ["#", "$SYS/#", "vigil/v1/ingest/+", "vigil/v1/+/+/status"])).toEqual([
      128, 128, 128, 128,
    ]);
    expect(rig.broker.access.subscribeRefused).toBe(4);
    expect(rig.broker.stats()).toMatchObject({ subscribeRefused_outside_grant: 4 });
    expect(r.connected).toBe(true);
  });

  it("an auditor may also read raw frames and $SYS", async () => {
    rig = await accessRig();
    const r = await rig.connect(await rig.token(rig.auditor));
    const g = await r.subscribeAsync(["vigil/v1/ingest/+", "$SYS/#"], { qos: 0 });
    expect(g.map((x) => x.qos)).toEqual([0, 0]);
  });

  it("error: a reader without a grant is refused at CONNECT (5); a device subscribing to # gets 0x80", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, await rig.token(rig.stranger))).toBe(5);
    const a = await rig.device(DEV_A);
    expect(await subackCodes(a, ["#"], 0)).toEqual([128]);
    expect(rig.broker.access.subscribeRefusedBy).toEqual({ device_topic: 1 });
  });

  it("error: an auditor who loses the role but keeps a gateway grant stays connected and receives no more raw frames: every delivery is checked again, and counted", async () => {
    rig = await accessRig();
    const aud = rig.auditor.address.toLowerCase() as Hex;
    rig.chain({ name: "GatewayAccessGranted", gatewayId: GW, reader: aud, expiresAt: 4_000_000_000 });
    const a = await rig.connect(await rig.token(rig.auditor));
    expect(await subackCodes(a, ["vigil/v1/ingest/#", STATUS])).toEqual([1, 1]);
    const got: string[] = [];
    let seen: (t: string) => void = () => undefined;
    a.on("message", (t) => {
      got.push(t);
      seen(t);
    });
    /** Publishes `frame` as device B, then a status as the gateway; resolves when the status arrives. */
    const round = async (seq: number): Promise<void> => {
      const d = await rig!.device(DEV_B);
      await d.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, seq), { qos: 1 });
      const status = new Promise<void>((res) => (seen = (t) => t === STATUS && res()));
      rig!.broker.publish(STATUS, "{}", { qos: 1, retain: false });
      await status;
      d.end(true);
    };
    await round(1);
    expect(got).toEqual([`vigil/v1/ingest/${hex8(DEV_B)}`, STATUS]);
    rig.chain({
      name: "RoleRevoked",
      role: (await import("../../gateway/src/chain/events.ts")).AUDITOR_ROLE_ID,
      account: aud,
    });
    expect(rig.broker.sweep()).toBe(0); // still a granted reader
    await round(2);
    // Messages to one client keep their order: the status came, the raw frame before it did not.
    expect(got).toEqual([`vigil/v1/ingest/${hex8(DEV_B)}`, STATUS, STATUS]);
    expect(rig.broker.stats()).toMatchObject({ forwardRefused_outside_grant: 1 });
    expect(a.connected).toBe(true);
  });

  it("attack: a reader revoked on chain loses its stored session at the next sweep: nothing more is queued for it, its client id is freed, and re-granted it gets nothing from the revoked time", async () => {
    let nowSec = Math.floor(Date.now() / 1000);
    rig = await accessRig({ nowSec: () => nowSec });
    const reader = rig.reader.address.toLowerCase() as Hex;
    const session = async () => ({
      clientId: "dash2",
      clean: false,
      ...(await rig!.token(rig!.reader, 600)),
    });
    const r = await rig.connect(await session());
    expect(await subackCodes(r, [STATUS])).toEqual([1]);
    r.end(true);
    await closed(r);
    await rig.broker.publish(STATUS, "queued while away", { qos: 1, retain: false });
    expect(rig.broker.storedSessions()).toMatchObject({ sessions: 1, messages: 1 });
    // A token's expiry alone does not end a stored session: its holder comes back with a new one.
    nowSec += 601;
    expect(rig.broker.sweep()).toBe(0);
    expect(rig.broker.access.revokedSessionsDropped).toBe(0);
    expect(rig.broker.storedSessions()).toMatchObject({ sessions: 1, messages: 1 });

    rig.chain({ name: "GatewayAccessRevoked", gatewayId: GW, reader });
    expect(rig.broker.sweep()).toBe(0); // not connected: nobody to disconnect
    expect(rig.broker.access.revokedSessionsDropped).toBe(1);
    await expect
      .poll(() => rig!.broker.storedSessions())
      .toEqual({ sessions: 0, messages: 0, inbound: 0, bytes: 0 });
    await rig.broker.publish(STATUS, "published while revoked", { qos: 1, retain: false });
    expect(rig.broker.storedSessions().messages).toBe(0);
    // Its client id is free for another identity.
    expect(await connackCode(rig.url, { clientId: "dash2", ...(await rig.token(rig.auditor)) })).toBe(0);

    // Granted again, it resumes no session and receives nothing queued.
    rig.chain({ name: "GatewayAccessGranted", gatewayId: GW, reader, expiresAt: 4_000_000_000 });
    const back = await mqtt.connectAsync(rig.url, { reconnectPeriod: 0, ...(await session()) });
    const got: string[] = [];
    back.on("message", (_t, m) => got.push(m.toString()));
    expect(await subackCodes(back, [STATUS])).toEqual([1]);
    await rig.broker.publish(STATUS, "after the grant", { qos: 1, retain: false });
    await expect.poll(() => got).toEqual(["after the grant"]);
    back.end(true);
  });

  it("error: a client id held by another identity is refused with CONNACK 2: a reader can neither knock a device off nor resume an auditor's stored session; the same identity reconnects as before", async () => {
    rig = await accessRig();
    const dev = await rig.device(DEV_A, { clientId: "sensor-a" });
    expect(await connackCode(rig.url, { clientId: "sensor-a", ...(await rig.token(rig.reader)) })).toBe(2);
    expect(dev.connected).toBe(true);
    expect(rig.broker.identityOf("sensor-a")).toMatchObject({ kind: "device", deviceId: DEV_A });
    // The device itself reconnects with its id (its old connection is closed, MQTT-3.1.4-2).
    const dev2 = await rig.device(DEV_A, { clientId: "sensor-a" });
    expect(dev2.connected).toBe(true);

    // An auditor's stored session (clean = false) with a frame queued while it is away.
    const aud = await rig.connect({ clientId: "audit-1", clean: false, ...(await rig.token(rig.auditor)) });
    expect(await subackCodes(aud, ["vigil/v1/ingest/#"])).toEqual([1]);
    aud.end(true);
    await closed(aud);
    const d = await rig.device(DEV_B);
    await d.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 1), { qos: 1 });
    const taken = { clientId: "audit-1", clean: false, ...(await rig.token(rig.reader)) };
    expect(await connackCode(rig.url, taken)).toBe(2);
    expect(rig.broker.access.clientIdTaken).toBe(2);
    // The auditor comes back to its session and gets what was queued for it.
    const back = await mqtt.connectAsync(rig.url, {
      reconnectPeriod: 0,
      clientId: "audit-1",
      clean: false,
      ...(await rig.token(rig.auditor)),
    });
    const frame = await new Promise<string>((res) => back.once("message", (t) => res(t)));
    expect(frame).toBe(`vigil/v1/ingest/${hex8(DEV_B)}`);
    back.end(true);
  });

  it("error: one identity cannot take every stored-session place: past maxStoredSessionsPerIdentity its new stored session is refused (3), its own session ids and clean sessions connect, and another identity still stores one", async () => {
    rig = await accessRig({ limits: { maxStoredSessions: 10, maxStoredSessionsPerIdentity: 2 } });
    const reader = await rig.token(rig.reader);
    for (const id of ["r-1", "r-2"]) {
      const c = await rig.connect({ clientId: id, clean: false, ...reader });
      c.end(true);
      await closed(c);
    }
    expect(await connackCode(rig.url, { clientId: "r-3", clean: false, ...reader })).toBe(3);
    expect(rig.broker.access.storedSessionsFull).toBe(1);
    // Its stored sessions resume, and a clean session is no stored one.
    expect(await connackCode(rig.url, { clientId: "r-2", clean: false, ...reader })).toBe(0);
    expect(await connackCode(rig.url, { clientId: "r-3", clean: true, ...reader })).toBe(0);
    // Other identities have their own allowance.
    expect(
      await connackCode(rig.url, { clientId: "aud-1", clean: false, ...(await rig.token(rig.auditor)) }),
    ).toBe(0);
    expect(
      await connackCode(rig.url, {
        clientId: "dev-a",
        clean: false,
        username: hex8(DEV_A),
        password: SECRET,
      }),
    ).toBe(0);
    expect(rig.broker.storedSessions().sessions).toBe(4);
  });

  it("behavior: auth none has one anonymous identity: only maxStoredSessions bounds its stored sessions", async () => {
    const b = new EmbeddedBroker(new Ingest({ sink: new MemorySink() }), {
      host: "127.0.0.1",
      port: 0,
      limits: { maxStoredSessions: 4, maxStoredSessionsPerIdentity: 1 },
    });
    await b.start();
    try {
      for (const id of ["a-1", "a-2", "a-3", "a-4"])
        expect(await connackCode(b.url, { clientId: id, clean: false })).toBe(0);
      expect(await connackCode(b.url, { clientId: "a-5", clean: false })).toBe(3);
      expect(b.storedSessions().sessions).toBe(4);
    } finally {
      await b.stop();
    }
  });

  it("error: an MQTT 5 client gets CONNACK 0x01 (unacceptable protocol version, MQTT-3.1.2-2) in 3.1.1 form and is disconnected before authentication, counted", async () => {
    // aedes 1.2 speaks MQTT 3.1.1 only: SUBACK 0x80 is its denial; reason 0x87 needs Mosquitto
    // (test/interop/mosquitto-access.test.ts).
    rig = await accessRig();
    const { port } = new URL(rig.url);
    // A raw MQTT 5 CONNECT (protocol level 5, clean start, keep-alive 60, no properties, id "x").
    const body = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 60, 0, 0, 1, 0x78]);
    const answer = await new Promise<string>((res, rej) => {
      const s = netConnect(Number(port), "127.0.0.1", () =>
        s.write(Buffer.concat([Buffer.from([0x10, body.length]), body])),
      );
      const got: Buffer[] = [];
      s.on("data", (d: Buffer) => got.push(d));
      s.on("error", rej);
      s.on("close", () => res(Buffer.concat(got).toString("hex")));
    });
    expect(answer).toBe("20020001"); // CONNACK, remaining length 2, no session, return code 1; then closed
    // mqtt.js as an MQTT 5 client, with valid device credentials: refused all the same.
    const e = (await mqtt
      .connectAsync(rig.url, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        username: hex8(DEV_A),
        password: SECRET,
      })
      .then(
        (c) => (c.end(true), undefined),
        (err: unknown) => err,
      )) as { code?: number } | undefined;
    expect(e?.code).toBe(1);
    // Counted once aedes has written the CONNACK and closed (after the client saw it).
    await vi.waitFor(() => expect(rig!.broker.access.unsupportedProtocol).toBe(2));
    expect(rig.broker.access.authRefused).toBe(0);
    expect(rig.broker.clients()).toBe(0);
  });

  it("error: an expired token is refused (4)", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, await rig.token(rig.reader, -1))).toBe(4);
    expect(rig.policy.refusals).toEqual({ token_expired: 1 });
  });

  it("error: a token valid for more than 24 h is refused (4)", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, await rig.token(rig.reader, 2 * 86_400))).toBe(4);
    expect(rig.policy.refusals).toEqual({ token_too_long: 1 });
  });

  it("error: a token for another gateway is refused (4)", async () => {
    rig = await accessRig();
    expect(await connackCode(rig.url, await rig.token(rig.reader, 3600, DOMAIN, OTHER_GW))).toBe(4);
    expect(rig.policy.refusals).toEqual({ token_wrong_signer: 1 });
  });

  it("error: a token from another chain (or registry) is refused (4)", async () => {
    rig = await accessRig({ failedLoginBackoffMs: 0 }); // every attempt checked (backoff: below)
    const otherChain = vigilDomain(10, DOMAIN.verifyingContract);
    const otherRegistry = vigilDomain(31337, `0x${"99".repeat(20)}`);
    expect(await connackCode(rig.url, await rig.token(rig.reader, 3600, otherChain))).toBe(4);
    expect(await connackCode(rig.url, await rig.token(rig.reader, 3600, otherRegistry))).toBe(4);
    expect(rig.policy.refusals).toEqual({ token_wrong_signer: 2 });
  });

  it("error: a token presented under another address is refused (4)", async () => {
    rig = await accessRig();
    const t = await rig.token(rig.stranger);
    expect(
      await connackCode(rig.url, { username: rig.reader.address.toLowerCase(), password: t.password }),
    ).toBe(4);
  });

  it("behavior: the reader's address is accepted in any case; error: a signature whose v is not 27 or 28 is refused (4)", async () => {
    rig = await accessRig({ failedLoginBackoffMs: 0 });
    const t = await rig.token(rig.reader);
    const hex = rig.reader.address.slice(2);
    // Checksummed, lower, upper, and a mixed case that is not the EIP-55 checksum.
    const mixed = [...hex.toLowerCase()].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("");
    for (const username of [
      rig.reader.address,
      `0x${hex.toLowerCase()}`,
      `0x${hex.toUpperCase()}`,
      `0x${mixed}`,
    ])
      expect(await connackCode(rig.url, { username, password: t.password }), username).toBe(0);
    // The same signature with v = 0 or 35 (ethers alone would take both).
    for (const v of ["00", "23"])
      expect(
        await connackCode(rig.url, { username: t.username, password: `${t.password.slice(0, -2)}${v}` }),
      ).toBe(4);
    expect(rig.policy.refusals.token_malformed).toBe(2);
  });

  it("error: a reader revoked mid-session is disconnected at the next sweep", async () => {
    rig = await accessRig();
    const r = await rig.connect(await rig.token(rig.reader));
    expect(rig.broker.sweep()).toBe(0);
    rig.chain({
      name: "GatewayAccessRevoked",
      gatewayId: GW,
      reader: rig.reader.address.toLowerCase() as Hex,
    });
    const gone = closed(r);
    expect(rig.broker.sweep()).toBe(1);
    await gone;
    expect(rig.broker.access.revokedDisconnects).toBe(1);
  });

  it("error: a reader whose token expires mid-session is disconnected at the next sweep", async () => {
    let now = Math.floor(Date.now() / 1000);
    rig = await accessRig({ nowSec: () => now });
    const r = await rig.connect(await rig.token(rig.reader, 60));
    now += 61;
    const gone = closed(r);
    expect(rig.broker.sweep()).toBe(1);
    await gone;
  });
});

describe("embedded broker limits", () => {
  it("error: a PUBLISH larger than maxPacketBytes disconnects before it is buffered; a real frame is still acknowledged", async () => {
    rig = await accessRig({ limits: { maxPacketBytes: 4096 } });
    const a = await rig.device(DEV_A);
    const b = await rig.device(DEV_B);
    const gone = closed(a);
    a.publish(`vigil/v1/ingest/${hex8(DEV_A)}`, Buffer.alloc(32 * 1024 * 1024), { qos: 1 });
    await gone;
    expect(rig.broker.access.packetTooLarge).toBe(1);
    await b.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 1), { qos: 1 });
    expect(rig.sink.records.map((r) => r.deviceId)).toEqual([DEV_B]);
  });

  it("error: a subscriber that stops reading is disconnected once maxQueuedBytes are queued to it; others keep being served", async () => {
    rig = await accessRig({ limits: { maxQueuedBytes: 64 * 1024 } });
    const slow = await rig.connect(await rig.token(rig.reader));
    const alert = `vigil/v1/${SITE_NAME}/${GW_NAME}/${hex8(DEV_A)}/alert`;
    await slow.subscribeAsync(alert, { qos: 0 });
    const gone = closed(slow);
    // The client's socket stops reading: the kernel buffers fill, then the broker's queue grows.
    (slow.stream as unknown as { pause(): void }).pause();
    const a = await rig.device(DEV_A);
    let seq = 0;
    const payload = Buffer.alloc(8 * 1024, 1);
    while (rig.broker.access.slowClient === 0) {
      rig.broker.publish(alert, payload, { qos: 0, retain: false });
      if (++seq % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(rig.broker.access.slowClient).toBe(1);
    (slow.stream as unknown as { resume(): void }).resume();
    await gone;
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    expect(rig.sink.records.map((r) => r.seq)).toEqual([1]);
  });

  it("error: connections beyond maxConnectionsPerAddress are closed at accept and counted", async () => {
    rig = await accessRig({ limits: { maxConnectionsPerAddress: 2 } });
    await rig.device(DEV_A);
    await rig.device(DEV_B);
    const c = mqtt.connect(rig.url, {
      reconnectPeriod: 0,
      username: hex8(DEV_UNREG),
      password: "x",
      connectTimeout: 5000,
    });
    await new Promise<void>((res) => c.once("close", () => res()));
    c.end(true);
    expect(rig.broker.access.tooManyConnections).toBe(1);
  });

  it("error: connects beyond maxConnectsPerSecondPerAddress are held unread, then closed and counted; connected clients keep being served", async () => {
    rig = await accessRig({ limits: { maxConnectsPerSecondPerAddress: 1 } });
    const r = rig;
    const a = await r.device(DEV_A);
    const port = Number(new URL(r.url).port);
    // A second connect within one second of the first is refused. Should the one-second window
    // roll over between two accepts (a stalled machine), the raw client is answered and tries again.
    const attempt = async (): Promise<
      { sock: ReturnType<typeof netConnect>; got: Buffer[]; t0: number } | undefined
    > => {
      const before = r.broker.access.connectRateLimited;
      const t0 = performance.now();
      const sock = netConnect(port, "127.0.0.1", () => sock.write(ANON_CONNECT));
      const got: Buffer[] = [];
      sock.on("data", (d: Buffer) => got.push(d));
      while (got.length === 0 && r.broker.access.connectRateLimited === before)
        await new Promise((res) => setImmediate(res));
      if (got.length === 0) return { sock, got, t0 };
      sock.destroy();
      return undefined;
    };
    let held: Awaited<ReturnType<typeof attempt>>;
    for (let i = 0; i < 5 && !held; i++) held = await attempt();
    expect(held).toBeDefined();
    const h = held!;
    const gone = new Promise<void>((res) => h.sock.once("close", () => res()));
    // While the refused socket is held, the connected device is served.
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    expect(h.sock.destroyed).toBe(false);
    await gone;
    // Closed by the gateway after the hold, with no CONNACK: no MQTT state was built for it.
    expect(performance.now() - h.t0).toBeGreaterThanOrEqual(900);
    expect(Buffer.concat(h.got).length).toBe(0);
    expect(r.sink.records.map((x) => x.seq)).toEqual([1]);
  });

  it("error: a connect flood past the held pool is shed at accept and counted; connected clients are served, new ones are accepted again once it drains", async () => {
    // A pool of 64 (default 1,024: a bigger flood than the kernel's accept queue of 511 admits at once).
    rig = await accessRig({ limits: { maxConnectsPerSecondPerAddress: 1 }, maxRefusedHeld: 64 });
    const r = rig;
    const a = await r.device(DEV_A);
    const port = Number(new URL(r.url).port);
    // Like a flooding client: every connection reconnects as soon as it is closed, 100 at once.
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop)
        await new Promise<void>((res) => {
          // An anonymous CONNECT: a connection that is accepted is answered CONNACK 5 and closed.
          const s = netConnect(port, "127.0.0.1", () => s.write(ANON_CONNECT));
          s.on("error", () => undefined);
          s.resume();
          s.once("close", () => res());
        });
    };
    const flood = Array.from({ length: 100 }, loop);
    while (r.broker.access.acceptShed === 0) await new Promise((res) => setImmediate(res));
    await a.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
    stop = true;
    await Promise.all(flood);
    const { connectRateLimited, acceptShed } = r.broker.access;
    expect(connectRateLimited).toBeGreaterThanOrEqual(64);
    expect(acceptShed).toBeGreaterThan(0);
    // Every flood socket is closed, the pool has drained: a new client is served again.
    const b = await r.device(DEV_B);
    await b.publishAsync(`vigil/v1/ingest/${hex8(DEV_B)}`, dataFrame(DEV_B, 1), { qos: 1 });
    expect(r.sink.records.map((x) => `${x.deviceId}:${x.seq}`).sort()).toEqual(
      [`${DEV_A}:1`, `${DEV_B}:1`].sort(),
    );
  });
});

describe("embedded broker, development policy (auth none, loopback)", () => {
  it("error: even without authentication nobody publishes outside the ingest topics, retains, or reads $SYS", async () => {
    const sink = new MemorySink();
    const b = new EmbeddedBroker(new Ingest({ sink }), { port: 0 });
    await b.start();
    try {
      const c = await mqtt.connectAsync(b.url, { clientId: "dev", reconnectPeriod: 0 });
      expect(await subackCodes(c, ["$SYS/#", "vigil/v1/+/+/status"])).toEqual([128, 1]);
      await c.publishAsync(`vigil/v1/ingest/${hex8(DEV_A)}`, dataFrame(DEV_A, 1), { qos: 1 });
      const gone = closed(c);
      c.publish("hostile/relay", "x", { qos: 1, retain: true });
      await gone;
      expect(sink.records.map((r) => r.seq)).toEqual([1]);
      expect(b.access.publishRefusedBy).toEqual({ retain: 1 });
    } finally {
      await b.stop();
    }
  });
});
