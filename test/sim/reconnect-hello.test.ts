// The simulator's MQTT link lost by the broker and re-established by the transport itself (not by
// the disconnect fault): every device says HELLO again, with the same boot_id (hardware/PROTOCOL.md,
// HELLO: "sent after boot and after every reconnect"), and its frames go on. Before, only the
// disconnect fault's reconnect sent HELLO; a gateway that lost the device's HELLO meanwhile had no
// schema for it until the device rebooted. Real aedes broker and mqtt.js client.
import { Aedes, type Client } from "aedes";
import { createServer, type AddressInfo, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { INGEST_TOPIC_PREFIX } from "../../gateway/src/protocol/topics.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";

let broker: { server: Server; aedes: Aedes } | undefined;
afterEach(async () => {
  const b = broker;
  broker = undefined;
  if (!b) return;
  await new Promise<void>((res) => b.server.close(() => res()));
  await new Promise<void>((res) => b.aedes.close(() => res()));
});

/** One ingest PUBLISH the broker received: its frame type, device, HELLO boot_id, connection (0, 1, …). */
interface Seen {
  kind: "hello" | "data";
  device: number;
  bootId?: number;
  connection: number;
}

async function plainBroker(): Promise<{
  url: string;
  seen: Seen[];
  clients: Client[];
  changed: () => Promise<void>;
}> {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  broker = { server, aedes };
  const seen: Seen[] = [];
  const clients: Client[] = [];
  let wake: (() => void) | undefined;
  aedes.on("client", (c) => clients.push(c));
  aedes.on("publish", (packet, client) => {
    if (!client || !packet.topic.startsWith(INGEST_TOPIC_PREFIX)) return;
    const f = decodeFrame(packet.payload as Buffer);
    const connection = clients.indexOf(client);
    if (f.type === FrameType.Hello)
      seen.push({ kind: "hello", device: f.deviceId, bootId: f.bootId, connection });
    else if (f.type === FrameType.Data) seen.push({ kind: "data", device: f.deviceId, connection });
    wake?.();
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    seen,
    clients,
    // Resolves at the next ingest PUBLISH: the test waits on events, not on time.
    changed: () => new Promise<void>((res) => (wake = res)),
  };
}

describe("simulator over MQTT: a link the transport re-established", () => {
  it("behavior: every device says HELLO again with its boot_id, then its frames go on", async () => {
    const b = await plainBroker();
    const stop = new AbortController();
    const sim = new Simulator({
      transport: new MqttTransport({ url: b.url, clientId: "sim-reconnect" }),
      devices: 2,
      rate: 50,
      durationS: 60,
      seed: 3,
      bootId: 41,
      stopSignal: stop.signal,
      drainMs: 2000,
    });
    const done = sim.run();
    const until = async (cond: () => boolean): Promise<void> => {
      while (!cond()) await b.changed();
    };
    const hellos = (connection: number) =>
      b.seen
        .filter((e) => e.kind === "hello" && e.connection === connection)
        .map((e) => [e.device, e.bootId]);
    const firstData = (connection: number, device: number) =>
      b.seen.findIndex((e) => e.kind === "data" && e.connection === connection && e.device === device);
    const firstHello = (connection: number, device: number) =>
      b.seen.findIndex((e) => e.kind === "hello" && e.connection === connection && e.device === device);
    try {
      await until(() => b.seen.filter((e) => e.kind === "data").length >= 10);
      expect(hellos(0)).toEqual([
        [1, 41],
        [2, 41],
      ]);
      // The broker drops the connection (as on its restart or a keepalive timeout).
      b.clients[0]!.close();
      await until(() => firstData(1, 1) >= 0 && firstData(1, 2) >= 0);
      // Same boot (a link drop is not a reboot), and each HELLO before that device's first frame.
      expect(hellos(1).sort()).toEqual([
        [1, 41],
        [2, 41],
      ]);
      for (const device of [1, 2]) expect(firstHello(1, device)).toBeLessThan(firstData(1, device));
    } finally {
      stop.abort();
      await done;
    }
  }, 60_000);
});
