/**
 * What the embedded broker keeps for stored sessions (clean = false) is bounded
 * (mqtt.embedded.limits maxStoredSessions, maxStoredMessages, maxStoredBytes), and a PUBLISH that
 * ingest did not accept (undecodable, NACKed) reaches no subscriber and no stored session. Before,
 * a local client could open sessions that kept a copy of every frame until the heap ran out
 * (hostile-client audit: 500 sessions and 15 s of QoS 1 traffic ended a 256 MB heap).
 * Real aedes and mqtt.js clients on loopback.
 */
import { connect as netConnect } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { describe, expect, it } from "vitest";
import type { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { embeddedRig } from "./embedded-rig.ts";
import { QUEUED_OVERHEAD_BYTES } from "../../gateway/src/ingest/mqtt/stored-sessions.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { connackCode } from "../access/rig.ts";

const DEV = 0x51;
const TOPIC = "vigil/v1/ingest/00000051";

const data = (seq: number): Buffer =>
  encodeFrame({
    type: FrameType.Data,
    deviceId: DEV,
    seq,
    timestampUs: 0,
    flags: 0,
    values: Float32Array.of(seq),
  });

const { stops, broker } = embeddedRig();

async function client(b: EmbeddedBroker, opts: mqtt.IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(b.url, { reconnectPeriod: 0, ...opts });
  stops.push(() => c.endAsync(true));
  return c;
}

/** A session that subscribes to every raw frame at QoS 1 and leaves (its queue fills while away). */
async function ghost(b: EmbeddedBroker, clientId: string): Promise<void> {
  const g = await client(b, { clientId, clean: false });
  await g.subscribeAsync("vigil/v1/ingest/#", { qos: 1 });
  await g.endAsync();
}

describe("embedded broker: stored sessions are bounded", () => {
  it("behavior: a session away keeps at most maxStoredMessages messages; the rest are counted as dropped; its return drains the queue", async () => {
    const b = await broker({ maxStoredMessages: 5 });
    await ghost(b, "ghost-1");
    const dev = await client(b, { clientId: "dev" });
    for (let seq = 1; seq <= 12; seq++) await dev.publishAsync(TOPIC, data(seq), { qos: 1 });
    expect(b.storedSessions()).toMatchObject({ sessions: 1, messages: 5 });
    expect(b.stats().storedDropped).toBe(7);

    const got: number[] = [];
    const back = mqtt.connect(b.url, { clientId: "ghost-1", clean: false, reconnectPeriod: 0 });
    stops.push(() => back.endAsync(true));
    await new Promise<void>((res) =>
      back.on("message", (_t, p) => {
        got.push(p.length);
        if (got.length === 5) res();
      }),
    );
    // The 5 kept are the first 5 (new messages are not queued once the queue is full).
    expect(got).toHaveLength(5);
    await expectEventually(() => b.storedSessions().messages === 0);
    expect(b.storedSessions().bytes).toBe(0);
  });

  it("behavior: all queues together keep at most maxStoredBytes (payload, topic and the per-message allowance)", async () => {
    const each = data(1).length + TOPIC.length + QUEUED_OVERHEAD_BYTES;
    const b = await broker({ maxStoredBytes: 10 * each + 100, maxStoredMessages: 1000 });
    for (let i = 0; i < 4; i++) await ghost(b, `ghost-${i}`);
    const dev = await client(b, { clientId: "dev" });
    for (let seq = 1; seq <= 20; seq++) await dev.publishAsync(TOPIC, data(seq), { qos: 1 });
    expect(b.storedSessions()).toEqual({ sessions: 4, messages: 10, inbound: 0, bytes: 10 * each });
    expect(b.stats().storedDropped).toBe(80 - 10);
  });

  it("error: a CONNECT that would store one more session than maxStoredSessions gets CONNACK 3; a stored session's own client id, and clean sessions, still connect", async () => {
    const b = await broker({ maxStoredSessions: 2 });
    await ghost(b, "ghost-1");
    await ghost(b, "ghost-2");
    expect(await connackCode(b.url, { clientId: "ghost-3", clean: false })).toBe(3);
    expect(b.access.storedSessionsFull).toBe(1);
    expect(await connackCode(b.url, { clientId: "ghost-2", clean: false })).toBe(0);
    expect(await connackCode(b.url, { clientId: "reader", clean: true })).toBe(0);
    // A stored session ended by a clean CONNECT of its client id frees its place.
    expect(await connackCode(b.url, { clientId: "ghost-1", clean: true })).toBe(0);
    expect(await connackCode(b.url, { clientId: "ghost-3", clean: false })).toBe(0);
    expect(b.storedSessions().sessions).toBe(2);
  });
});

describe("embedded broker: only frames ingest accepted are passed on", () => {
  it("behavior: garbage and NACKed PUBLISHes are acknowledged but reach neither a subscriber nor a stored session", async () => {
    const b = await broker();
    await ghost(b, "ghost-1");
    const sub = await client(b, { clientId: "auditor" });
    const seen: string[] = [];
    await sub.subscribeAsync("vigil/v1/ingest/#", { qos: 1 });
    const last = new Promise<void>((res) =>
      sub.on("message", (t, p) => {
        seen.push(`${t} ${p.length}`);
        if (p.equals(data(2))) res();
      }),
    );
    const dev = await client(b, { clientId: "dev" });
    await dev.publishAsync(TOPIC, Buffer.from("not a frame at all"), { qos: 1 }); // undecodable
    await dev.publishAsync(TOPIC, data(1), { qos: 1 });
    await dev.publishAsync("vigil/v1/ingest/00000052", data(2 + 100), { qos: 1 }); // topic ≠ frame's device
    await dev.publishAsync(TOPIC, data(2), { qos: 1 });
    await last;
    expect(seen).toEqual([`${TOPIC} ${data(1).length}`, `${TOPIC} ${data(2).length}`]);
    // The ghost's queue holds the two accepted frames only.
    expect(b.storedSessions().messages).toBe(2);
  });
});

/** Polls `ok` (no fixed sleep: each turn yields to the event loop's I/O). */
async function expectEventually(ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("embedded broker: connections that fail before their CONNECT", () => {
  it("error: bytes that are not MQTT, and a PUBLISH before the CONNECT, are closed and counted as connectionErrors", async () => {
    const b = await broker();
    const send = (bytes: Buffer): Promise<void> =>
      new Promise((res) => {
        const s = netConnect(b.port, "127.0.0.1", () => s.write(bytes));
        s.on("error", () => undefined);
        s.once("close", () => res());
      });
    await send(Buffer.from("GET / HTTP/1.1\r\n\r\n")); // not an MQTT packet type the broker accepts first
    // A QoS 0 PUBLISH of "x" on topic "t" as the first packet [MQTT-3.1.0-1].
    await send(Buffer.from([0x30, 4, 0, 1, 0x74, 0x78]));
    await expectEventually(() => b.stats().connectionErrors === 2);
    expect(b.clients()).toBe(0);
  });
});
