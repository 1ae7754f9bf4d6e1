/**
 * What one client id can make the embedded broker keep, beyond the stored sessions' queues
 * (embedded-stored-sessions.test.ts): inbound QoS 2 messages awaiting their PUBREL, bounded per
 * client id across its reconnects (aedes bounds them per connection only), and topic filters,
 * bounded per client (growth audit: 15 reconnects withholding PUBREL took RSS from 171 to 328 MB;
 * 60,000 stored filters took the heap from 35 to 94 MB). Real aedes on loopback; the QoS 2 client
 * is raw MQTT 3.1.1 bytes, since mqtt.js always sends the PUBREL.
 */
import { connect as netConnect, type Socket } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { describe, expect, it, vi } from "vitest";
import type { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { embeddedRig } from "./embedded-rig.ts";
import { QUEUED_OVERHEAD_BYTES } from "../../gateway/src/ingest/mqtt/stored-sessions.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { subackCodes } from "../access/rig.ts";

const TOPIC = "vigil/v1/ingest/00000051";
const frame = (seq: number): Buffer =>
  encodeFrame({
    type: FrameType.Data,
    deviceId: 0x51,
    seq,
    timestampUs: 0,
    flags: 0,
    values: Float32Array.of(seq),
  });

const { stops, broker } = embeddedRig();

/** MQTT's remaining length (MQTT 3.1.1 §2.2.3). */
function remaining(n: number): Buffer {
  const out: number[] = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return Buffer.from(out);
}

const str = (s: string): Buffer => {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const packet = (first: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([first]), remaining(body.length), body]);
const id16 = (id: number): Buffer => Buffer.from([id >> 8, id & 0xff]);

/**
 * A raw MQTT 3.1.1 session (clean session false) that publishes at QoS 2 and sends PUBREL only when
 * told: `got` counts the packet types received (0x2 CONNACK, 0x5 PUBREC, 0x7 PUBCOMP).
 */
async function rawSession(b: EmbeddedBroker, clientId: string) {
  const s: Socket = netConnect(b.port, "127.0.0.1");
  s.on("error", () => undefined);
  const closed = new Promise<void>((res) => s.once("close", () => res()));
  stops.push(async () => {
    s.destroy();
    await closed;
  });
  const got = new Map<number, number>();
  let buf = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    // Every reply here is 2 + remaining-length bytes with a one-byte remaining length.
    while (buf.length >= 2 && buf.length >= 2 + buf[1]!) {
      const type = buf[0]! >> 4;
      got.set(type, (got.get(type) ?? 0) + 1);
      buf = buf.subarray(2 + buf[1]!);
    }
  });
  const body = Buffer.concat([str("MQTT"), Buffer.from([4, 0x00, 0, 60]), str(clientId)]);
  s.write(packet(0x10, body));
  await vi.waitFor(() => expect(got.get(0x2)).toBe(1));
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  return {
    got: (type: number) => got.get(type) ?? 0,
    /** A QoS 2 PUBLISH (bytes that are no frame: ingest counts them, aedes still holds the id). */
    publish: (id: number) =>
      s.write(packet(0x34, Buffer.concat([str(TOPIC), id16(id), Buffer.alloc(64, 7)]))),
    pubrel: (id: number) => s.write(packet(0x62, id16(id))),
    closed,
    isClosed: () => isClosed,
    end: async () => {
      s.end();
      await closed;
    },
  };
}

describe("embedded broker: inbound QoS 2 messages awaiting PUBREL", () => {
  it("error: one client id keeps at most maxStoredMessages across reconnects; one more closes its connection, counted; only the id is kept", async () => {
    const b = await broker({ maxStoredMessages: 5 });
    const first = await rawSession(b, "hoarder");
    for (let id = 1; id <= 5; id++) first.publish(id);
    await vi.waitFor(() => expect(first.got(0x5)).toBe(5));
    expect(b.storedSessions()).toMatchObject({ inbound: 5, bytes: 5 * QUEUED_OVERHEAD_BYTES });
    await first.end();

    // Reconnecting (clean session false) does not open another 5 places: aedes' per-connection
    // window starts empty, the session's does not.
    const second = await rawSession(b, "hoarder");
    second.publish(6);
    await second.closed;
    expect(second.got(0x5)).toBe(0);
    expect(b.stats().storedInboundRefused).toBe(1);
    expect(b.storedSessions().inbound).toBe(5);

    // A resend of a remembered id is a duplicate (PUBREC again), and a PUBREL frees its place
    // [MQTT-4.3.3-2].
    const third = await rawSession(b, "hoarder");
    third.publish(3);
    await vi.waitFor(() => expect(third.got(0x5)).toBe(1));
    third.pubrel(3);
    await vi.waitFor(() => expect(third.got(0x7)).toBe(1));
    expect(b.storedSessions()).toMatchObject({ inbound: 4, bytes: 4 * QUEUED_OVERHEAD_BYTES });
    third.publish(7);
    await vi.waitFor(() => expect(third.got(0x5)).toBe(2));
    expect(third.isClosed()).toBe(false);
    expect(b.storedSessions().inbound).toBe(5);

    // A clean session of the client id forgets them all.
    await third.end();
    const clean = await mqtt.connectAsync(b.url, { clientId: "hoarder", clean: true, reconnectPeriod: 0 });
    await clean.endAsync();
    await vi.waitFor(() => expect(b.storedSessions()).toMatchObject({ inbound: 0, bytes: 0 }));
  });
});

describe("embedded broker: inbound QoS 2 ids and the queues are bounded apart", () => {
  it("behavior: queues full to maxStoredBytes do not close a QoS 2 publisher's connection, and its ids do not take the queues' room", async () => {
    const b = await broker({ maxStoredBytes: 4 * QUEUED_OVERHEAD_BYTES, maxStoredMessages: 100 });
    const away = await mqtt.connectAsync(b.url, { clientId: "away", clean: false, reconnectPeriod: 0 });
    await away.subscribeAsync("vigil/v1/ingest/#", { qos: 1 });
    await away.endAsync();
    // Frames queued for the session away until its bytes are used up (3 fit).
    const dev = await mqtt.connectAsync(b.url, { clientId: "dev", reconnectPeriod: 0 });
    stops.push(() => dev.endAsync(true));
    for (let seq = 0; seq < 5; seq++) await dev.publishAsync(TOPIC, frame(seq), { qos: 1 });
    expect(b.storedSessions().messages).toBe(3);
    expect(b.stats().storedDropped).toBe(2);
    // QoS 2 ids have a room of their own: 4 × 256 bytes.
    const q2 = await rawSession(b, "q2");
    for (let id = 1; id <= 4; id++) q2.publish(id);
    await vi.waitFor(() => expect(q2.got(0x5)).toBe(4));
    expect(q2.isClosed()).toBe(false);
    expect(b.storedSessions()).toMatchObject({ messages: 3, inbound: 4 });
    q2.publish(5);
    await q2.closed;
    expect(b.stats().storedInboundRefused).toBe(1);
  });
});

describe("embedded broker: topic filters per client", () => {
  const subscriber = async (b: EmbeddedBroker, clean: boolean): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(b.url, { clientId: "many", clean, reconnectPeriod: 0 });
    stops.push(() => c.endAsync(true));
    return c;
  };

  it("error: past maxSubscriptionsPerClient a filter is refused with SUBACK 0x80 and counted; an UNSUBSCRIBE frees a place; a stored session's filters count again when it returns", async () => {
    const b = await broker({ maxSubscriptionsPerClient: 3 });
    const c = await subscriber(b, false);
    expect(await subackCodes(c, ["a/1", "a/2", "a/3", "a/4"])).toEqual([1, 1, 1, 128]);
    // The same filter again is not one more.
    expect(await subackCodes(c, ["a/1"])).toEqual([1]);
    expect(b.stats().subscribeRefused_too_many_subscriptions).toBe(1);
    await c.unsubscribeAsync("a/2");
    expect(await subackCodes(c, ["a/5"])).toEqual([1]);
    await c.endAsync();

    // Back with its stored session: a/1, a/3 and a/5 restored, not a/4 (refused, though aedes
    // stores a SUBSCRIBE's whole list when one of its filters is granted): no room for a fourth,
    // and no refusal at the restore.
    const back = await subscriber(b, false);
    expect(await subackCodes(back, ["a/6"])).toEqual([128]);
    expect(b.stats().subscribeRefused_too_many_subscriptions).toBe(2);
  });
});
