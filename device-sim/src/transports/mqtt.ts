/**
 * MQTT transport: each device publishes its binary frames on vigil/v1/ingest/{id} at QoS 1
 * and treats the PUBACK as the acknowledgement (the gateway's embedded broker answers only
 * once the frame is durable). NACKs arrive on vigil/v1/ingest/{id}/nack; the gateway PUBACKs a
 * refused frame too and then NACKs it, so the device (SimDevice.onNack) takes such a PUBACK back.
 *
 * It resends only as MQTT allows: a PUBLISH awaiting its PUBACK is never published again on the
 * same connection. The sessions are clean (CleanSession = 1), so nothing survives a lost
 * connection ([MQTT-3.1.2-6]): when the connection drops, the transport ends that client, every
 * frame it owned is the device's again (republished by the device's resend timer, duplicates are
 * the gateway's to drop), and a new client connects every 500 ms until the broker answers. (mqtt.js
 * would otherwise replay its outgoing store one PUBLISH per round trip after a reconnect, and it
 * stalls for good when a packet id of that store was handed out again meanwhile.) Packet ids are
 * allocated uniquely (mqtt.js's default provider reuses ids still in flight after 65,535
 * publications, and a PUBACK then acknowledged the wrong frame: the mismatch seen at 19k
 * frames/s); at most `maxInflight` PUBLISHes are outstanding per connection.
 */
import mqtt, { UniqueMessageIdProvider, type MqttClient } from "mqtt";
import { redactUrl } from "../../../gateway/src/core/errors.ts";
import { decodeFrame, deviceIdHex, type Frame } from "../../../gateway/src/protocol/frame.ts";
import { INGEST_TOPIC_PREFIX } from "../../../gateway/src/protocol/topics.ts";
import type { Transport } from "./types.ts";
import { SimError } from "../errors.ts";

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
  /** (device, seq) of DATA frames whose PUBLISH awaits its PUBACK on the current connection. */
  readonly #inflight = new Set<string>();
  /** Connection generation: a callback of an ended client must not touch the next one's state. */
  #generation = 0;
  #closing = false;
  #retry: NodeJS.Timeout | undefined;
  /** PUBLISH → PUBACK times (ms) since the last takeAckLatencies(), grown as needed. */
  #lat = new Float64Array(4096);
  #latN = 0;
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
    this.#drop();
    this.#closing = false;
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 30_000);
    // Like a device, keep trying while the broker is down; give up only after connectTimeoutMs.
    for (;;) {
      try {
        await this.#connect();
        return;
      } catch (e) {
        if (Date.now() >= deadline)
          throw new SimError(
            "SIM_CONNECT",
            `no MQTT connection to ${redactUrl(this.opts.url)} within ${this.opts.connectTimeoutMs ?? 30_000} ms`,
            { cause: e },
          );
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One connection attempt: a new client, a clean session, the NACK subscription. */
  async #connect(): Promise<void> {
    const client = mqtt.connect(this.opts.url, {
      clientId: this.opts.clientId ?? `vigil-sim-${process.pid}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      messageIdProvider: new UniqueMessageIdProvider(),
      ...(this.opts.username ? { username: this.opts.username } : {}),
      ...(this.opts.password ? { password: this.opts.password } : {}),
    });
    try {
      await new Promise<void>((res, rej) => {
        client.once("connect", () => res());
        client.once("error", rej);
        client.once("close", () => rej(new SimError("SIM_CONNECT", "connection closed before CONNACK")));
      });
      await client.subscribeAsync(`${INGEST_TOPIC_PREFIX}+/nack`, { qos: 1 });
    } catch (e) {
      client.end(true);
      throw e;
    }
    client.on("error", () => undefined); // followed by "close", handled there
    client.on("message", (_topic, payload) => {
      try {
        this.#onControl?.(decodeFrame(payload));
      } catch {
        // A malformed control frame is ignored; the resend timer covers what it would have said.
      }
    });
    client.once("close", () => {
      if (this.#client !== client || this.#closing) return;
      this.#drop();
      const retry = (): void => {
        this.#retry = undefined;
        if (this.#closing) return;
        this.#connect().catch(() => {
          if (!this.#closing) this.#retry = setTimeout(retry, 500);
        });
      };
      this.#retry = setTimeout(retry, 500);
    });
    this.#generation++;
    this.#client = client;
    this.#connected = true;
  }

  /** Ends the current client (if any); what it owned is the devices' to resend. */
  #drop(): void {
    const c = this.#client;
    this.#client = undefined;
    this.#connected = false;
    this.#generation++;
    this.#inflight.clear();
    c?.end(true);
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
    const gen = this.#generation;
    const t0 = performance.now();
    client.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(raw), { qos: 1 }, (err) => {
      if (gen !== this.#generation) return; // an ended connection's callback
      if (key !== undefined) this.#inflight.delete(key);
      if (!err && seq !== undefined) {
        this.#noteLatency(performance.now() - t0);
        this.onDelivered?.(deviceId, seq);
      }
    });
    return true;
  }

  takeAckLatencies(): Float64Array {
    const out = this.#lat.slice(0, this.#latN);
    this.#latN = 0;
    return out;
  }

  #noteLatency(ms: number): void {
    if (this.#latN === this.#lat.length) {
      const grown = new Float64Array(this.#lat.length * 2);
      grown.set(this.#lat);
      this.#lat = grown;
    }
    this.#lat[this.#latN++] = ms;
  }

  sendNoise(deviceId: number, bytes: Uint8Array): void {
    this.#client?.publish(`${INGEST_TOPIC_PREFIX}${deviceIdHex(deviceId)}`, Buffer.from(bytes), { qos: 1 });
  }

  async drain(): Promise<void> {
    // mqtt.js keeps its own outgoing queue; nothing to flush at this layer.
  }

  async disconnect(): Promise<void> {
    // A new connection is a new (clean) session: what the old one owned must be resent.
    this.#closing = true;
    clearTimeout(this.#retry);
    this.#drop();
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retry);
    // Forced: by now every frame is acknowledged or given up.
    this.#drop();
  }
}
