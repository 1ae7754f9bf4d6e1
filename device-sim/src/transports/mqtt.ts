/**
 * MQTT transport: each device publishes its binary frames on vigil/v1/ingest/{id} at QoS 1
 * and treats the PUBACK as the acknowledgement (the gateway's embedded broker answers only
 * once the frame is durable). NACKs arrive on vigil/v1/ingest/{id}/nack.
 *
 * It resends only as MQTT allows: a PUBLISH awaiting its PUBACK is never published again by the
 * application (the session retransmits it after a reconnect, [MQTT-4.4.0-1]); a frame is
 * republished only when its PUBLISH failed (connection lost, PUBACK withheld). Packet ids are
 * allocated uniquely (mqtt.js's default provider reuses ids still in flight after 65,535
 * publications, and a PUBACK then acknowledged the wrong frame: the mismatch seen at 19k
 * frames/s); at most `maxInflight` PUBLISHes are outstanding per connection.
 */
import mqtt, { UniqueMessageIdProvider, type MqttClient } from "mqtt";
import { redactUrl } from "../../../gateway/src/core/errors.ts";
import { decodeFrame, deviceIdHex, type Frame } from "../../../gateway/src/protocol/frame.ts";
import { INGEST_TOPIC_PREFIX } from "../../../gateway/src/protocol/topics.ts";
import type { Transport } from "./types.ts";

export interface MqttTransportOptions {
  url: string;
  clientId?: string;
  username?: string;
  password?: string;
  /** Give up connecting after this long. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** PUBLISHes awaiting their PUBACK on the connection, at most. Default 30,000 (ids are 1..65,535). */
  maxInflight?: number;
}

export class MqttTransport implements Transport {
  readonly name = "mqtt";
  #client: MqttClient | undefined;
  #onControl: ((f: Frame) => void) | undefined;
  #connected = false;
  /** (device, seq) of DATA frames whose PUBLISH awaits its PUBACK. */
  readonly #inflight = new Set<string>();
  /** Sends refused because the in-flight window was full (the device keeps the frame). */
  windowFull = 0;
  onDelivered?: (deviceId: number, seq: number) => void;

  constructor(private readonly opts: MqttTransportOptions) {}

  get connected(): boolean {
    return this.#connected;
  }

  async open(onControl: (f: Frame) => void): Promise<void> {
    this.#onControl = onControl;
    await this.reconnect();
  }

  async reconnect(): Promise<void> {
    const client = mqtt.connect(this.opts.url, {
      clientId: this.opts.clientId ?? `vigil-sim-${process.pid}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 500,
      messageIdProvider: new UniqueMessageIdProvider(),
      ...(this.opts.username ? { username: this.opts.username } : {}),
      ...(this.opts.password ? { password: this.opts.password } : {}),
    });
    // Like a device, keep trying while the broker is down (mqtt.js reconnects every 500 ms);
    // give up only after connectTimeoutMs.
    client.on("error", () => undefined);
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => {
        client.end(true);
        rej(
          new Error(
            `no MQTT connection to ${redactUrl(this.opts.url)} within ${this.opts.connectTimeoutMs ?? 30_000} ms`,
          ),
        );
      }, this.opts.connectTimeoutMs ?? 30_000);
      client.once("connect", () => {
        clearTimeout(t);
        res();
      });
    });
    client.on("message", (_topic, payload) => {
      try {
        this.#onControl?.(decodeFrame(payload));
      } catch {
        // A malformed control frame is ignored; the resend timer covers what it would have said.
      }
    });
    await client.subscribeAsync(`${INGEST_TOPIC_PREFIX}+/nack`, { qos: 1 });
    this.#client = client;
    this.#connected = true;
  }

  /** True while the PUBLISH of (device, seq) awaits its PUBACK: the session owns it. */
  inFlight(deviceId: number, seq: number): boolean {
    return this.#inflight.has(`${deviceId}:${seq}`);
  }

  send(deviceId: number, raw: Uint8Array, seq?: number, opts: { force?: boolean } = {}): boolean {
    const client = this.#client;
    if (!client || !this.#connected) return false;
    const key = seq === undefined ? undefined : `${deviceId}:${seq}`;
    if (key !== undefined && !opts.force) {
      if (this.#inflight.has(key)) return false; // the session still owns it and will deliver it
      if (this.#inflight.size >= (this.opts.maxInflight ?? 30_000)) {
        this.windowFull++;
        return false;
      }
    }
    if (key !== undefined) this.#inflight.add(key);
    client.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(raw), { qos: 1 }, (err) => {
      if (key !== undefined) this.#inflight.delete(key);
      if (!err && seq !== undefined) this.onDelivered?.(deviceId, seq);
    });
    return true;
  }

  sendNoise(deviceId: number, bytes: Uint8Array): void {
    this.#client?.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(bytes), { qos: 1 });
  }

  async drain(): Promise<void> {
    // mqtt.js keeps its own outgoing queue; nothing to flush at this layer.
  }

  async disconnect(): Promise<void> {
    const c = this.#client;
    this.#connected = false;
    this.#client = undefined;
    // A new connection is a new (clean) session: what the old one owned must be resent.
    this.#inflight.clear();
    if (c) await c.endAsync(true);
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#connected = false;
    this.#client = undefined;
    // Forced: by now every frame is acknowledged or given up, and a graceful end can wait
    // forever on a connection that is being re-established.
    if (c) await c.endAsync(true);
  }
}
