/**
 * The attack table of issue 10 driven by the Debian command-line clients `mosquitto_pub` and
 * `mosquitto_sub` (package mosquitto-clients, 2.0), against the embedded broker (registry policy,
 * test/access/rig.ts) and against a real Mosquitto configured by the export (password file +
 * dynamic-security plugin, test/helpers/mosquitto-access.ts). Each client is spawned here, waited
 * on by its output or its exit, and stopped by its PID. The exit codes and messages asserted are
 * the ones these binaries print (client/pub_client.c, sub_client.c): e.g. exit 5 and "Connection
 * error: Connection Refused: not authorised.", "All subscription requests were denied.".
 * The same lines with mqtt.js: test/access/embedded-attacks.test.ts and
 * test/interop/mosquitto-access.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet } from "ethers";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { exportMosquitto, exportUsers } from "../../gateway/src/access/mosquitto.ts";
import { dynsecState, syncDynsec } from "../../gateway/src/access/mosquitto-dynsec.ts";
import { hashPassword } from "../../gateway/src/access/passwords.ts";
import { mintReaderToken } from "../../gateway/src/access/reader-token.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import type { RegistryEventBody } from "../../gateway/src/chain/events.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import {
  accessRig,
  dataFrame,
  DEV_A,
  DEV_B,
  DEV_UNREG,
  DOMAIN,
  GW,
  GW_NAME,
  helloFrame,
  hex8,
  OTHER_GW,
  SECRET,
  SITE,
  SITE_NAME,
  type AccessRig,
} from "../access/rig.ts";
import {
  accessMosquitto,
  mosquittoClient,
  runClient,
  subscribedCodes,
  type AccessMosquitto,
} from "../helpers/mosquitto-access.ts";

const STATUS = `vigil/v1/${SITE_NAME}/${GW_NAME}/status`;
const OWN = `vigil/v1/${SITE_NAME}/${GW_NAME}`;
const ingest = (id: number): string => `vigil/v1/ingest/${hex8(id)}`;
const NOT_AUTHORISED = "Connection error: Connection Refused: not authorised.";
const BAD_CREDENTIALS = "Connection error: Connection Refused: bad user name or password.";
const ALL_DENIED = "All subscription requests were denied.";

/** One broker under test, seen through what the gateway receives. */
interface Target {
  port: number;
  /** Credentials of a reader the registry allows (a token on the embedded broker, a secret on Mosquitto). */
  reader(): Promise<{ username: string; password: string }>;
  /** Sequence numbers of `id`'s DATA frames that reached the gateway (after everything sent before was routed). */
  frames(id: number): Promise<number[]>;
  /** Whether `id`'s schema was replaced by the forged HELLO ("forged" profile). */
  forgedHello(id: number): Promise<boolean>;
  /** Payloads that reached the gateway's subscribers or store on `topic` from clients. */
  onTopic(topic: string): Promise<string[]>;
  /** The gateway publishes its retained status. */
  retainStatus(text: string): Promise<void>;
  revokeSensor(id: number): Promise<void>;
  revokeReader(): Promise<void>;
  stop(): Promise<void>;
}

async function embeddedTarget(): Promise<Target & { rig: AccessRig }> {
  // Every login checked: the table logs in as the same device from 127.0.0.1 right after a wrong
  // password (the failed-login backoff: test/access/embedded-attacks.test.ts).
  const rig = await accessRig({ failedLoginBackoffMs: 0 });
  return {
    rig,
    port: Number(new URL(rig.url).port),
    reader: () => rig.token(rig.reader),
    // The embedded broker PUBACKs a device's PUBLISH only after the frame is stored (or refused).
    frames: async (id) =>
      Promise.resolve(rig.sink.records.filter((r) => r.deviceId === id).map((r) => r.seq)),
    forgedHello: async (id) => Promise.resolve(rig.ingest.counters.devices.get(id)?.profile === "forged"),
    // Nothing but ingest topics reaches the gateway; a refused PUBLISH is counted, never routed.
    onTopic: async () => Promise.resolve([]),
    retainStatus: async (text) => Promise.resolve(rig.broker.publish(STATUS, text, { qos: 1, retain: true })),
    revokeSensor: async (id) =>
      Promise.resolve(
        rig.chain({ name: "SensorStatusChanged", gatewayId: GW, sensorId: id, status: "revoked" }),
      ),
    revokeReader: async () => {
      rig.chain({
        name: "GatewayAccessRevoked",
        gatewayId: GW,
        reader: rig.reader.address.toLowerCase() as Hex,
      });
      rig.broker.sweep(); // what the runtime does after every refresh
      return Promise.resolve();
    },
    stop: () => rig.stop(),
  };
}

async function mosquittoTarget(): Promise<Target & { broker: AccessMosquitto }> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-mosq-clients-"));
  const reader = Wallet.createRandom().address.toLowerCase() as Hex;
  let view = new RegistryView(GW);
  const apply = (...events: RegistryEventBody[]): void => {
    const v = view.clone();
    for (const e of events) v.apply(e);
    view = v;
  };
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
  );
  const passwords = [
    ...[DEV_A, DEV_B].map((d) => hashPassword(hex8(d), SECRET)),
    hashPassword(reader, "reader secret"),
  ];
  /** The running broker, once started (the first export is written before it starts). */
  const live: { broker?: AccessMosquitto } = {};
  /** What the running gateway does (runtime.ts): sync the plugin, then the files and SIGHUP. */
  const exportNow = async (): Promise<void> => {
    const o = {
      view,
      passwords: passwords.join("\n"),
      site: SITE_NAME,
      gatewayName: GW_NAME,
      gatewayLine: hashPassword("vigil-gateway", "gateway secret"),
    };
    if (live.broker)
      await syncDynsec({
        url: live.broker.url,
        username: "vigil-gateway",
        password: "gateway secret",
        desired: dynsecState(exportUsers(o)),
      });
    exportMosquitto({ ...o, outDir: dir, ...(live.broker ? { pid: live.broker.proc.pid! } : {}) });
  };
  await exportNow();
  const broker = await accessMosquitto(dir);
  live.broker = broker;
  const url = broker.url;
  const gateway: MqttClient = await mqtt.connectAsync(url, {
    username: "vigil-gateway",
    password: "gateway secret",
    reconnectPeriod: 0,
    clientId: "gateway",
  });
  const received: Array<{ topic: string; payload: Buffer }> = [];
  gateway.on("message", (topic, payload) => received.push({ topic, payload }));
  await gateway.subscribeAsync(["vigil/v1/ingest/#", `${OWN}/#`], { qos: 1 });
  let marker = 0;
  /** A marker through the broker to the gateway: everything published before has been routed. */
  const flush = async (): Promise<void> => {
    const id = `flush-${++marker}`;
    await gateway.publishAsync(`${OWN}/flush`, id, { qos: 1 });
    await vi.waitFor(() => expect(received.some((r) => r.payload.toString() === id)).toBe(true));
  };
  const decoded = (id: number): ReturnType<typeof decodeFrame>[] =>
    received.filter((r) => r.topic === ingest(id)).map((r) => decodeFrame(r.payload));
  return {
    broker,
    port: broker.port,
    reader: async () => Promise.resolve({ username: reader, password: "reader secret" }),
    frames: async (id) => {
      await flush();
      return decoded(id).flatMap((f) => (f.type === FrameType.Data ? [f.seq] : []));
    },
    forgedHello: async (id) => {
      await flush();
      return decoded(id).some((f) => f.type === FrameType.Hello && f.profile === "forged");
    },
    onTopic: async (topic) => {
      await flush();
      return received.filter((r) => r.topic === topic).map((r) => r.payload.toString());
    },
    retainStatus: async (text) => {
      await gateway.publishAsync(STATUS, text, { qos: 1, retain: true });
    },
    revokeSensor: async (id) => {
      apply({ name: "SensorStatusChanged", gatewayId: GW, sensorId: id, status: "revoked" });
      await exportNow();
    },
    revokeReader: async () => {
      apply({ name: "GatewayAccessRevoked", gatewayId: GW, reader });
      await exportNow();
    },
    async stop() {
      gateway.end(true);
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const dev = (id: number): string[] => ["-u", hex8(id), "-P", SECRET];

describe.each([
  { name: "embedded broker", make: embeddedTarget, mosquitto: false },
  { name: "Mosquitto 2.0 (export + dynamic-security)", make: mosquittoTarget, mosquitto: true },
])("mosquitto_pub / mosquitto_sub against the $name", ({ make, mosquitto }) => {
  let t: Target;
  beforeAll(async () => {
    t = await make();
  }, 30_000);
  afterAll(async () => {
    await t?.stop();
  });

  it("a device publishes its own frame (exit 0, the frame reaches the gateway)", async () => {
    const r = await runClient(
      "mosquitto_pub",
      t.port,
      [...dev(DEV_A), "-q", "1", "-t", ingest(DEV_A), "-s"],
      dataFrame(DEV_A, 1),
    );
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(await t.frames(DEV_A)).toEqual([1]);
  });

  it("error: anonymous mosquitto_pub and mosquitto_sub are refused at CONNECT: exit 5, not authorised", async () => {
    const p = await runClient("mosquitto_pub", t.port, ["-q", "1", "-t", ingest(DEV_A), "-m", "x"]);
    expect(p.code).toBe(5);
    expect(p.stderr).toContain(NOT_AUTHORISED);
    const s = await runClient("mosquitto_sub", t.port, ["-t", "#", "-W", "5"]);
    expect(s.code).toBe(5);
    expect(s.stderr).toContain(NOT_AUTHORISED);
  });

  it(`error: a wrong password is refused at CONNECT: ${mosquitto ? "exit 5, not authorised (Mosquitto's answer)" : "exit 4, bad user name or password"}`, async () => {
    const p = await runClient("mosquitto_pub", t.port, [
      "-u",
      hex8(DEV_A),
      "-P",
      "wrong",
      "-q",
      "1",
      "-t",
      ingest(DEV_A),
      "-m",
      "x",
    ]);
    expect(p.code).toBe(mosquitto ? 5 : 4);
    expect(p.stderr).toContain(mosquitto ? NOT_AUTHORISED : BAD_CREDENTIALS);
  });

  it(`error: publishing as another device ${mosquitto ? "is dropped (3.1.1) / PUBACK 0x87 Not authorized (MQTT 5)" : "loses the connection (exit 7)"}; nothing reaches the gateway`, async () => {
    const p = await runClient(
      "mosquitto_pub",
      t.port,
      [...dev(DEV_A), "-q", "1", "-t", ingest(DEV_B), "-s"],
      dataFrame(DEV_B, 1),
    );
    if (mosquitto) {
      expect(p.code).toBe(0); // MQTT 3.1.1 has no negative PUBACK [MQTT-3.3.5-2]
      const p5 = await runClient(
        "mosquitto_pub",
        t.port,
        [...dev(DEV_A), "-V", "5", "-q", "1", "-t", ingest(DEV_B), "-s"],
        dataFrame(DEV_B, 2),
      );
      expect(p5.stderr).toContain("Warning: Publish 1 failed: Not authorized.");
    } else {
      expect(p.code).toBe(7);
      expect(p.stderr).toContain("Error: The connection was lost.");
    }
    expect(await t.frames(DEV_B)).toEqual([]);
  });

  it("error: a forged HELLO for another device never replaces that device's schema", async () => {
    const p = await runClient(
      "mosquitto_pub",
      t.port,
      [...dev(DEV_A), "-q", "1", "-t", ingest(DEV_B), "-s"],
      helloFrame(DEV_B),
    );
    expect(p.code).toBe(mosquitto ? 0 : 7);
    expect(await t.forgedHello(DEV_B)).toBe(false);
  });

  for (const topic of [
    `${OWN}/${hex8(DEV_A)}/alert`,
    `${OWN}/${hex8(DEV_A)}/health`,
    STATUS,
    `${ingest(DEV_A)}/nack`,
  ])
    it(`error: a device publishing on ${topic} is refused; nothing is delivered there`, async () => {
      const p = await runClient("mosquitto_pub", t.port, [
        ...dev(DEV_A),
        "-V",
        mosquitto ? "5" : "311",
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        "fake",
      ]);
      if (mosquitto) expect(p.stderr).toContain("Warning: Publish 1 failed: Not authorized.");
      else expect(p.code).toBe(7);
      expect(await t.onTopic(topic)).not.toContain("fake");
    });

  it("error: a retained status cannot be overwritten: a reader's mosquitto_sub still gets the gateway's", async () => {
    await t.retainStatus("online");
    const p = await runClient("mosquitto_pub", t.port, [
      ...dev(DEV_A),
      "-q",
      "1",
      "-r",
      "-t",
      STATUS,
      "-m",
      "offline",
    ]);
    expect(p.code).toBe(mosquitto ? 0 : 7);
    const rd = await t.reader();
    const s = await runClient("mosquitto_sub", t.port, [
      "-u",
      rd.username,
      "-P",
      rd.password,
      "-t",
      STATUS,
      "-C",
      "1",
      "-W",
      "10",
    ]);
    expect(s).toMatchObject({ code: 0, stdout: "online\n" });
  });

  it("error: subscribing to # without a grant: SUBACK 0x80, 'All subscription requests were denied.'", async () => {
    const rd = await t.reader();
    for (const who of [dev(DEV_A), ["-u", rd.username, "-P", rd.password]]) {
      const s = await runClient("mosquitto_sub", t.port, [...who, "-d", "-t", "#", "-W", "10"]);
      expect(subscribedCodes(s.stdout)).toEqual([128]);
      expect(s.stderr).toContain(ALL_DENIED);
    }
    // A granted filter beside it is granted (QoS 0 asked, 0 given).
    const s = await runClient("mosquitto_sub", t.port, [
      "-u",
      rd.username,
      "-P",
      rd.password,
      "-d",
      "-t",
      "#",
      "-t",
      `${OWN}/+/alert`,
      "-W",
      "1",
    ]);
    expect(subscribedCodes(s.stdout)).toEqual([128, 0]);
  });

  it(`error: an MQTT 5 mosquitto_sub -V 5 subscribing to # ${mosquitto ? "gets reason 0x87 (135)" : "is refused at CONNECT: the embedded broker speaks 3.1.1 (exit 132)"}`, async () => {
    const s = await runClient("mosquitto_sub", t.port, [
      ...dev(DEV_A),
      "-V",
      "5",
      "-d",
      "-t",
      "#",
      "-W",
      "10",
    ]);
    if (mosquitto) {
      expect(subscribedCodes(s.stdout)).toEqual([0x87]);
      expect(s.stderr).toContain(ALL_DENIED);
    } else {
      expect(s.code).toBe(132);
      expect(s.stderr).toContain(
        "Connection error: Unsupported Protocol Version. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.",
      );
    }
  });

  it("error: a reader revoked mid-session: its running mosquitto_sub is disconnected, refused on reconnecting (exit 5)", async () => {
    const rd = await t.reader();
    const sub = mosquittoClient("mosquitto_sub", t.port, [
      "-u",
      rd.username,
      "-P",
      rd.password,
      "-d",
      "-t",
      `${OWN}/+/alert`,
    ]);
    try {
      await sub.until(/Subscribed \(mid: \d+\): 0/);
      await t.revokeReader();
      const r = await sub.exited;
      // libmosquitto reconnects after the broker closed the session; the CONNACK refuses it.
      expect(r.code).toBe(5);
      expect(r.stderr).toContain(NOT_AUTHORISED);
    } finally {
      await sub.stop();
    }
  });

  it("error: a sensor revoked mid-stream: earlier frames reached the gateway, later ones do not", async () => {
    const pub = (seq: number) =>
      runClient(
        "mosquitto_pub",
        t.port,
        [...dev(DEV_B), "-q", "1", "-t", ingest(DEV_B), "-s"],
        dataFrame(DEV_B, seq),
      );
    expect((await pub(10)).code).toBe(0);
    // A device session open across the revocation (its NACK subscription).
    const nack = mosquittoClient("mosquitto_sub", t.port, [
      ...dev(DEV_B),
      "-d",
      "-t",
      `${ingest(DEV_B)}/nack`,
    ]);
    try {
      await nack.until(/Subscribed \(mid: \d+\): 0/);
      await t.revokeSensor(DEV_B);
      if (mosquitto) {
        // Gone from the export: its open session is closed (libmosquitto reconnects after 1 s and
        // is refused) and it cannot log in again once Mosquitto has processed the SIGHUP (a
        // login before that is denied everything by the plugin).
        expect((await nack.exited).code).toBe(5);
        const later = await pub(11);
        expect(later.code).toBe(5);
        expect(later.stderr).toContain(NOT_AUTHORISED);
      } else {
        // The embedded broker refuses the revoked sensor's new CONNECT (5); the session open
        // across the revocation stays, so admission's REVOKED_DEVICE NACKs can reach it.
        const later = await pub(11);
        expect(later.code).toBe(5);
        expect(later.stderr).toContain(NOT_AUTHORISED);
        expect(nack.proc.exitCode).toBeNull();
      }
      expect(await t.frames(DEV_B)).toEqual([10]);
    } finally {
      await nack.stop();
    }
  });

  it("error: 1,000 failed mosquitto_pub logins in a row (guessing a device's secret) are each refused; another device is served at once", async () => {
    // The target has a password line but no registration (DEV_B is revoked by now, and a revoked
    // sensor is refused before any password check): every guess is checked (embedded: 4) or
    // unknown to the export (Mosquitto: 5).
    const codes = new Map<number | null, number>();
    for (let i = 0; i < 1000; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, k) =>
          runClient("mosquitto_pub", t.port, [
            "-i",
            `brute-${i + k}`,
            "-u",
            hex8(DEV_UNREG),
            "-P",
            `guess-${i + k}`,
            "-q",
            "1",
            "-t",
            ingest(DEV_A),
            "-m",
            "x",
          ]),
        ),
      );
      for (const r of batch) codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    }
    expect([...codes]).toEqual([[mosquitto ? 5 : 4, 1000]]);
    const before = await t.frames(DEV_A);
    const r = await runClient(
      "mosquitto_pub",
      t.port,
      [...dev(DEV_A), "-q", "1", "-t", ingest(DEV_A), "-s"],
      dataFrame(DEV_A, 99),
    );
    expect(r.code).toBe(0);
    expect(await t.frames(DEV_A)).toEqual([...before, 99]);
  }, 120_000);
});

// Mosquitto cannot check reader tokens (readers there use a provisioned secret): embedded only.
describe("mosquitto_sub with reader tokens against the embedded broker", () => {
  it("error: reader tokens that are expired, for another gateway, or from another chain: exit 4, bad user name or password", async () => {
    const rig = await accessRig();
    const port = Number(new URL(rig.url).port);
    try {
      const now = Math.floor(Date.now() / 1000);
      for (const tok of [
        await mintReaderToken(rig.reader.privateKey, DOMAIN, GW, now - 1),
        await mintReaderToken(rig.reader.privateKey, DOMAIN, OTHER_GW, now + 3600),
        await mintReaderToken(rig.reader.privateKey, vigilDomain(1, `0x${"0f".repeat(20)}`), GW, now + 3600),
      ]) {
        const s = await runClient("mosquitto_sub", port, [
          "-u",
          tok.username,
          "-P",
          tok.password,
          "-t",
          `${OWN}/#`,
          "-W",
          "5",
        ]);
        expect(s.code).toBe(4);
        expect(s.stderr).toContain(BAD_CREDENTIALS);
      }
    } finally {
      await rig.stop();
    }
  });
});
