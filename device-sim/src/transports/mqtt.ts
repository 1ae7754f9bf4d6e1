/**
 * MQTT transport: each device publishes its binary frames on vigil/v1/ingest/{id} at QoS 1
 * and treats the PUBACK as the acknowledgement (the gateway's embedded broker answers only
 * once the frame is durable). NACKs arrive on vigil/v1/ingest/{id}/nack.
 */
import mqtt, { type MqttClient } from "mqtt";
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
}

export class MqttTransport implements Transport {
  readonly name = "mqtt";
  #client: MqttClient | undefined;
  #onControl: ((f: Frame) => void) | undefined;
  #connected = false;
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

  send(deviceId: number, raw: Uint8Array, seq?: number): void {
    const client = this.#client;
    if (!client || !this.#connected) return;
    client.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(raw), { qos: 1 }, (err) => {
      if (!err && seq !== undefined) this.onDelivered?.(deviceId, seq);
    });
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
