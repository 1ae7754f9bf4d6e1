/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1), listening on loopback by default. Device
 * frames are ingested inside `authorizePublish`, so the broker's PUBACK to the device is sent
 * only after the frame is durable [MQTT-4.3.2-2 makes the receiver own the message once it
 * PUBACKs]. When the store is unavailable the client is disconnected without a PUBACK; its
 * session resends the PUBLISH on reconnect [MQTT-4.4.0-1].
 *
 * Back-pressure (MQTT 3.1.1 has no receive maximum, so the broker withholds PUBACKs and stops
 * reading): aedes parses one socket read at a time and reads the next only when every PUBLISH
 * of the current one has been authorised, i.e. stored here. So each client's in-flight window
 * is one socket read (at most 64 KiB of packets, ≈ 800 six-channel DATA frames), and TCP slows
 * the sender beyond it. While ingest as a whole is busy (its backlog above `ingest.maxPending`)
 * the broker also holds back the PUBACKs of frames already stored, so no client is read until
 * the backlog has drained to half; then the held PUBACKs go out (counted `mqttHeld`).
 * (aedes's own Client.pause() is not used: it drops the batch count of packets that complete
 * while paused and never reads that client again.)
 */
import { createServer, type Server, type Socket } from "node:net";
import { Aedes, type AuthorizePublishHandler, type Client } from "aedes";
import type { Ingest } from "../ingest.ts";
import type { IngestSource } from "../source.ts";
import { MqttIngestHandler } from "./handler.ts";
import { IngestRejectError, SourceError } from "../errors.ts";

export interface EmbeddedBrokerOptions {
  /** Default 1883; 0 picks a free port (see `port` after start). */
  port?: number;
  /** Default 127.0.0.1: expose to the plant network only on purpose. */
  host?: string;
  onError?: (e: SourceError) => void;
  /**
   * How long stop() waits for connected clients to read what was published before it and close
   * their side (graceful close, see stop()). Default 5000 ms.
   */
  closeTimeoutMs?: number;
}

/** Topic prefixes only the gateway itself may publish under. */
const RESERVED = ["$SYS/", "vigil/v1/"];

export class EmbeddedBroker implements IngestSource {
  readonly name = "mqtt:embedded";
  broker: Aedes | undefined;
  #server: Server | undefined;
  readonly #conns = new Set<Socket>();
  #port = 0;
  readonly #handler: MqttIngestHandler;
  readonly #ingest: Ingest;
  readonly #counters = { connects: 0, disconnects: 0, retries: 0, clientErrors: 0, held: 0 };
  /** Authorisations completed while ingest is busy, released when it is not. */
  #held: Array<() => void> = [];

  constructor(
    ingest: Ingest,
    private readonly opts: EmbeddedBrokerOptions = {},
  ) {
    this.#ingest = ingest;
    this.#handler = new MqttIngestHandler(ingest);
    ingest.onPressure((busy) => {
      if (busy) return;
      const held = this.#held;
      this.#held = [];
      for (const release of held) release();
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `mqtt://${this.opts.host ?? "127.0.0.1"}:${this.#port}`;
  }

  stats(): Record<string, number> {
    return { ...this.#counters };
  }

  async start(): Promise<void> {
    const broker = await Aedes.createBroker({ heartbeatInterval: 60_000 });
    broker.authorizePublish = this.#authorizePublish;
    broker.on("client", () => this.#counters.connects++);
    broker.on("clientDisconnect", () => this.#counters.disconnects++);
    broker.on("clientError", (_c: Client, _e: Error) => this.#counters.clientErrors++);
    const server = createServer((sock) => {
      this.#conns.add(sock);
      sock.once("close", () => this.#conns.delete(sock));
      broker.handle(sock);
    });
    await new Promise<void>((res, rej) => {
      server.once("error", (e) =>
        rej(
          new SourceError(
            "MQTT_IO",
            `${this.opts.host ?? "127.0.0.1"}:${this.opts.port ?? 1883}`,
            e.message,
            { cause: e },
          ),
        ),
      );
      server.listen(this.opts.port ?? 1883, this.opts.host ?? "127.0.0.1", () => res());
    });
    const addr = server.address();
    this.#port = typeof addr === "object" && addr ? addr.port : 0;
    this.broker = broker;
    this.#server = server;
  }

  #authorizePublish: AuthorizePublishHandler = (client, packet, cb) => {
    const topic = packet.topic;
    // client is null for the gateway's own publications (alerts, NACKs, LWT).
    if (!client) return cb(null);
    if (MqttIngestHandler.handles(topic)) {
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      const v = this.#handler.handle(topic, payload);
      if (v instanceof Promise)
        void v.then(
          (verdict) => this.#hold(() => this.#finish(verdict, cb)),
          (e: unknown) => cb(e as Error),
        );
      else this.#finish(v, cb);
      return;
    }
    if (RESERVED.some((p) => topic.startsWith(p)))
      return cb(
        new SourceError("MQTT_REFUSED", `client ${client.id}`, `${topic} is reserved for the gateway`),
      );
    cb(null);
  };

  /** Runs `release` now, or when ingest is no longer busy (withholding the PUBACK until then). */
  #hold(release: () => void): void {
    if (!this.#ingest.busy) return release();
    this.#counters.held++;
    this.#ingest.counters.shed("mqttHeld", "mqtt");
    this.#held.push(release);
  }

  #finish(
    v: { action: "ack" | "retry"; nack?: { topic: string; payload: Buffer } },
    cb: (e: Error | null) => void,
  ): void {
    if (v.nack) this.publish(v.nack.topic, v.nack.payload, { qos: 1, retain: false });
    if (v.action === "retry") {
      this.#counters.retries++;
      return cb(new IngestRejectError("STORE_UNAVAILABLE", "store unavailable; resend later"));
    }
    cb(null);
  }

  /** Publishes as the gateway (alerts, health, NACKs); bypasses authorizePublish. */
  publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1; retain: boolean }): void {
    this.broker?.publish(
      {
        cmd: "publish",
        topic,
        payload: typeof payload === "string" ? Buffer.from(payload) : payload,
        qos: opts.qos,
        retain: opts.retain,
        dup: false,
      },
      () => undefined,
    );
  }

  /**
   * Graceful stop: no new connections, then every client connection is half-closed (FIN after
   * the writes already queued) and the broker keeps reading until the client has read
   * everything and closed its side, at most `closeTimeoutMs`; only then are the sockets
   * destroyed. Destroying a socket with unread data in it resets the connection and can lose the
   * messages published just before (the final health and the offline status): seen with 1,515
   * devices before this. Devices' unacknowledged PUBLISHes are resent by their sessions.
   */
  async stop(): Promise<void> {
    const b = this.broker;
    const s = this.#server;
    this.broker = undefined;
    this.#server = undefined;
    // PUBACKs held back for back-pressure are not sent: their frames are stored, and the devices
    // resend them to the next session, which answers them as duplicates.
    this.#held = [];
    const closed = s ? new Promise<void>((res) => s.close(() => res())) : Promise.resolve();
    const gone = [...this.#conns].map(
      (c) =>
        new Promise<void>((res) => {
          if (c.destroyed) return res();
          c.once("close", () => res());
          c.end();
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((res) => (timer = setTimeout(res, this.opts.closeTimeoutMs ?? 5000))),
    ]);
    clearTimeout(timer);
    if (b) await new Promise<void>((res) => b.close(() => res()));
    for (const c of this.#conns) c.destroy();
    await closed;
  }
}
