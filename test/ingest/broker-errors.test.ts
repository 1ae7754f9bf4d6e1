/**
 * Socket and listener errors on the embedded broker never end the gateway: each is counted and the
 * broker goes on serving. An 'error' event without a listener is thrown by Node's EventEmitter,
 * which would end the process (vitest reports it as an unhandled error, failing these tests).
 */
import { connect as netConnect, Server, type Socket } from "node:net";
import mqtt from "mqtt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker, type EmbeddedBrokerOptions } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { freePort } from "../helpers/procs.ts";

let broker: EmbeddedBroker | undefined;
const open: Socket[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  await broker?.stop();
  broker = undefined;
  vi.restoreAllMocks();
});

async function start(o: Partial<EmbeddedBrokerOptions> = {}): Promise<EmbeddedBroker> {
  broker = new EmbeddedBroker(new Ingest({ sink: new MemorySink() }), {
    port: 0,
    limitLoopback: true,
    limits: { maxConnectionsPerAddress: 1 },
    ...o,
  });
  await broker.start();
  return broker;
}

const stat = (b: EmbeddedBroker, k: string): number => b.stats()[k] ?? 0;

/** A raw TCP connection from 127.0.0.1, once connected. */
async function tcp(port: number): Promise<Socket> {
  const s = netConnect(port, "127.0.0.1");
  open.push(s);
  s.on("error", () => undefined);
  await new Promise((res) => s.once("connect", res));
  return s;
}

/** A WebSocket upgrade (subprotocol mqtt) over a raw socket, once the server has answered it. */
async function wsUpgrade(port: number): Promise<Socket> {
  const s = await tcp(port);
  const answered = new Promise((res) => s.once("data", res));
  s.write(
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
  );
  await answered;
  return s;
}

async function connects(url: string): Promise<void> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  await c.endAsync();
}

describe("embedded broker: errors on refused connections and on listeners", () => {
  it("error: a connection refused at accept and held, then reset by its peer (ECONNRESET), is counted; the connected client is still answered", async () => {
    const b = await start();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { reconnectPeriod: 0 });
    try {
      const refused = await tcp(b.port);
      await vi.waitFor(() => expect(b.access.tooManyConnections).toBe(1), { interval: 5 });
      refused.resetAndDestroy();
      await vi.waitFor(() => expect(stat(b, "clientErrors")).toBe(1), { interval: 5 });
      // The broker still answers (a SUBACK, whatever its grant).
      expect(await client.subscribeAsync("vigil/v1/x/y", { qos: 1 })).toHaveLength(1);
    } finally {
      await client.endAsync();
    }
  });

  it("error: a refused WebSocket connection that sends a bad frame (reserved opcode) is counted; the broker goes on", async () => {
    const b = await start({ websocket: { port: 0 } });
    await wsUpgrade(b.wsPort);
    const second = await wsUpgrade(b.wsPort);
    await vi.waitFor(() => expect(b.access.tooManyConnections).toBe(1), { interval: 5 });
    // A masked client frame with opcode 3 (reserved, RFC 6455 5.2): ws fails the stream.
    second.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4]));
    await vi.waitFor(() => expect(stat(b, "clientErrors")).toBe(1), { interval: 5 });
  });

  it("error: a listener error after start (EMFILE at accept) is counted, twice, and the listener keeps accepting", async () => {
    const listening: Server[] = [];
    const listen = Server.prototype.listen;
    vi.spyOn(Server.prototype, "listen").mockImplementation(function (this: Server, ...a: unknown[]) {
      listening.push(this);
      return (listen as (...x: unknown[]) => Server).apply(this, a);
    });
    const b = await start();
    const server = listening[0]!;
    const emfile = (): Error => Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    server.emit("error", emfile());
    server.emit("error", emfile());
    expect(stat(b, "listenerErrors")).toBe(2);
    await connects(`mqtt://127.0.0.1:${b.port}`);
  });

  it("error: aedes' own 'error' event (its persistence failed) is counted and reported, and the broker keeps serving", async () => {
    const reported: unknown[] = [];
    const b = await start({ onError: (e) => reported.push(e) });
    b.broker!.emit("error", new Error("persistence: subscription lookup failed"));
    expect(stat(b, "brokerErrors")).toBe(1);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatchObject({ code: "MQTT_IO" });
    expect((reported[0] as Error).message).toMatch(/broker error: persistence: subscription lookup failed/);
    await connects(`mqtt://127.0.0.1:${b.port}`);
  });

  it("error: a WebSocket port already in use fails start with the port and the reason, not a thrown event", async () => {
    const port = await freePort();
    const squatter = new Server();
    await new Promise<void>((res) => squatter.listen(port, "127.0.0.1", res));
    try {
      await expect(start({ websocket: { port } })).rejects.toThrow(
        new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE`),
      );
    } finally {
      squatter.close();
    }
  });
});
