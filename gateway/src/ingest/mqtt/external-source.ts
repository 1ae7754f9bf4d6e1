/**
 * Ingest from an external broker (Mosquitto, EMQX, HiveMQ…). The gateway subscribes at
 * QoS 1 with a persistent session (clean=false, stable client id), and mqtt.js sends the
 * PUBACK only when `handleMessage` calls back, i.e. after the frame is durable, so the broker
 * redelivers anything the gateway did not store [MQTT-4.4.0-1]. When the store is
 * unavailable the gateway withholds the PUBACK and reconnects after a backoff, which makes the
 * broker resend the unacknowledged messages.
 */
import type { IClientOptions, MqttClient } from "mqtt";
import { redactUrl } from "../../core/errors.ts";
import { firstConnack } from "../../protocol/mqtt-connack.ts";
import { INGEST_JSON_SUBSCRIPTION, INGEST_SUBSCRIPTION } from "../../protocol/topics.ts";
import { SourceError } from "../errors.ts";
import type { Ingest } from "../ingest.ts";
import type { IngestSource } from "../source.ts";
import { MqttIngestHandler } from "./handler.ts";

export interface ExternalMqttOptions {
  url: string;
  /** Stable id so the broker keeps the session. Default `vigil-gateway`. */
  clientId?: string;
  username?: string;
  password?: string;
  /** Reconnect delay after a refused store write, ms. Default 1000. */
  retryMs?: number;
  /**
   * start() waits this long for the first CONNACK, then goes on without it (degraded: mqtt.js
   * reconnects every second, `connected()` is false). Default 10 000.
   */
  connectTimeoutMs?: number;
  /** Aborted when a stop is asked during start-up: start() stops waiting for the first CONNACK. */
  startSignal?: AbortSignal;
  onError?: (e: SourceError) => void;
}

export class ExternalMqttSource implements IngestSource {
  readonly name: string;
  client: MqttClient | undefined;
  readonly #handler: MqttIngestHandler;
  readonly #counters = { connects: 0, offline: 0, retries: 0, handlerErrors: 0 };
  #retrying = false;

  constructor(
    ingest: Ingest,
    private readonly opts: ExternalMqttOptions,
  ) {
    this.name = `mqtt:${redactUrl(opts.url)}`;
    this.#handler = new MqttIngestHandler(ingest);
  }

  stats(): Record<string, number> {
    return { ...this.#counters };
  }

  /** Whether the broker connection is up now (false while reconnecting, and before start). */
  connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(): Promise<void> {
    const connectMs = this.opts.connectTimeoutMs ?? 10_000;
    const o: IClientOptions = {
      clientId: this.opts.clientId ?? "vigil-gateway",
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 1000,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      ...(this.opts.username ? { username: this.opts.username } : {}),
      ...(this.opts.password ? { password: this.opts.password } : {}),
    };
    // mqtt.js is imported when a connection is first made: a gateway on its embedded broker never
    // loads it (mqtt.js and serialport together: about 4 MB of RSS; gateway/src/infer/README.md
    // "Where the RSS goes").
    const { default: mqtt } = await import("mqtt");
    const client = mqtt.connect(this.opts.url, o);
    client.handleMessage = (packet, done) => {
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      const finish = (v: { action: "ack" | "retry"; nack?: { topic: string; payload: Buffer } }) => {
        if (v.nack) client.publish(v.nack.topic, v.nack.payload, { qos: 1 });
        if (v.action === "ack") return done();
        refuse();
      };
      // An error to mqtt.js means "no PUBACK"; the reconnect makes the broker redeliver.
      const refuse = () => {
        done(new SourceError("MQTT_IO", redactUrl(this.opts.url), "frame not stored; PUBACK withheld"));
        this.#retry(client);
      };
      // The handler answers every input with a verdict; a throw is a bug. It is reported (counted,
      // with its cause) and the frame is refused like a store failure, so nothing is acknowledged
      // that was not stored.
      const failed = (e: unknown) => {
        this.#counters.handlerErrors++;
        this.opts.onError?.(
          new SourceError(
            "MQTT_IO",
            redactUrl(this.opts.url),
            `ingest handler failed: ${(e as Error)?.message ?? String(e)}`,
            {
              cause: e,
            },
          ),
        );
        refuse();
      };
      try {
        const v = this.#handler.handle(packet.topic, payload);
        if (v instanceof Promise) void v.then(finish, failed);
        else finish(v);
      } catch (e) {
        failed(e);
      }
    };
    let subscribed: Promise<void> | undefined;
    client.on("connect", (ack) => {
      this.#counters.connects++;
      // A resumed session already has the subscriptions [MQTT-3.2.2-2].
      if (ack.sessionPresent) return;
      const p = client
        .subscribeAsync({ [INGEST_SUBSCRIPTION]: { qos: 1 }, [INGEST_JSON_SUBSCRIPTION]: { qos: 1 } })
        .then(() => undefined);
      // A connection lost before the SUBACK is retried on the next CONNACK; never unhandled.
      p.catch((e: unknown) =>
        this.opts.onError?.(
          new SourceError("MQTT_IO", redactUrl(this.opts.url), `subscribe failed: ${(e as Error).message}`, {
            cause: e,
          }),
        ),
      );
      subscribed ??= p;
    });
    client.on("offline", () => this.#counters.offline++);
    client.on("error", (e) =>
      this.opts.onError?.(new SourceError("MQTT_IO", redactUrl(this.opts.url), e.message, { cause: e })),
    );
    this.client = client;
    // README "When the gateway refuses to start": a broker that does not answer can come back, so
    // the start goes on without it (degraded, reconnecting); one that refuses the gateway's
    // CONNECT (credentials, client id) will refuse it again: fatal.
    let first: "connected" | "timeout" | "aborted";
    try {
      first = await firstConnack(client, connectMs, this.opts.startSignal);
    } catch (e) {
      this.client = undefined;
      const err = e as Error & { code: number };
      throw new SourceError(
        "MQTT_IO",
        redactUrl(this.opts.url),
        `the broker refused the gateway's CONNECT (CONNACK ${err.code}: ${err.message.replace(/^Connection refused: /, "")})`,
        { cause: e },
      );
    }
    if (first === "timeout")
      this.opts.onError?.(
        new SourceError(
          "MQTT_IO",
          redactUrl(this.opts.url),
          `no CONNACK within ${connectMs / 1000} s: started without the broker, reconnecting every second (degraded)`,
        ),
      );
    // The first session must hold the subscription before start() returns (a persistent
    // session only queues for subscriptions it has); when not connected yet, the first CONNACK
    // subscribes.
    if (client.connected) await subscribed;
  }

  /** Drops the connection after a delay so the broker redelivers what was not PUBACKed. */
  #retry(client: MqttClient): void {
    this.#counters.retries++;
    if (this.#retrying) return;
    this.#retrying = true;
    const t = setTimeout(() => {
      this.#retrying = false;
      if (this.client === client) client.stream.destroy();
    }, this.opts.retryMs ?? 1000);
    t.unref();
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    // Forced: a PUBACK lost here only means the broker redelivers a frame the store dedups.
    if (c) await c.endAsync(true);
  }
}
