/**
 * Publishes to an external MQTT broker (Mosquitto, EMQX, HiveMQ) with mqtt.js, MQTT 3.1.1.
 * The gateway status topic is registered as the connection's last will (retained, QoS 1), so
 * the broker itself publishes `offline` when the gateway vanishes without a DISCONNECT
 * [MQTT-3.1.2-8], [MQTT-3.1.2-10] (also when only the connection is lost: after the reconnect,
 * `open`'s `onReconnect` lets the alert service publish `online` again); a clean `close()`
 * publishes `offline` first and then sends DISCONNECT, which discards the will [MQTT-3.1.2-10]. Retained status also means a dashboard
 * that subscribes later still learns the state [MQTT-3.3.1-6].
 *
 * Bound: mqtt.js keeps QoS 1 messages in memory until PUBACK (and queues them while
 * disconnected). At most `maxInFlight` publications may be unacknowledged; beyond that new
 * messages are dropped and counted (`counters.dropped`); health is retained and superseded by
 * the next one anyway, alerts are also leaves in the attestation batches.
 */
import type { MqttClient } from "mqtt";
import { redactUrl } from "../core/errors.ts";
import { settlesWithin } from "../core/timers.ts";
import { firstConnack } from "../protocol/mqtt-connack.ts";
import { PublishError } from "./embedded-publisher.ts";
import type { AlertPublisher, EncodedMessage, PublisherCounters } from "./publisher.ts";

export interface MqttClientPublisherOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Default 1000 (Mosquitto's default max_inflight/queued figures are of this order). */
  maxInFlight?: number;
  /** Keep-alive in seconds: how fast the broker notices a dead gateway (≈ 1.5×). Default 30. */
  keepalive?: number;
  connectTimeoutMs?: number;
  /**
   * How long open() waits for the first CONNACK, ms, asked when open() runs. Default
   * `connectTimeoutMs`. The runtime answers 0 when the ingest source on the same broker got no
   * CONNACK within its own wait: the start waits for a silent broker once, not once per client.
   */
  connectWaitMs?: () => number;
  /** Aborted when a stop is asked during start-up: open() stops waiting for the first CONNACK. */
  startSignal?: AbortSignal;
}

export class MqttClientPublisher implements AlertPublisher {
  readonly kind = "mqtt";
  readonly counters: PublisherCounters = { published: 0, failed: 0, dropped: 0 };
  #client: MqttClient | undefined;
  #inFlight = 0;
  readonly #max: number;

  constructor(private readonly opts: MqttClientPublisherOptions) {
    this.#max = opts.maxInFlight ?? 1000;
  }

  /** The underlying client (tests use it to simulate an abrupt disconnect). */
  get client(): MqttClient | undefined {
    return this.#client;
  }

  /** Whether the broker connection is up now (false before open() and while reconnecting). */
  connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /**
   * Connects, waiting at most connectTimeoutMs for the first CONNACK: a broker that does not answer
   * (yet) is not fatal (mqtt.js reconnects every second and queues the QoS 1 publications meanwhile;
   * the ingest source reports the outage). A broker that refuses the CONNECT (credentials, client
   * id) is: PublishError.
   */
  async open(will: EncodedMessage, onReconnect?: () => void): Promise<void> {
    // mqtt.js is imported when a connection is first made: a gateway on its embedded broker never
    // loads it (mqtt.js and serialport together: about 4 MB of RSS; gateway/src/infer/README.md
    // "Where the RSS goes").
    const { default: mqtt } = await import("mqtt");
    const client = mqtt.connect(this.opts.url, {
      clientId: this.opts.clientId,
      protocolVersion: 4,
      clean: true,
      keepalive: this.opts.keepalive ?? 30,
      reconnectPeriod: 1000,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      ...(this.opts.username !== undefined ? { username: this.opts.username } : {}),
      ...(this.opts.password !== undefined ? { password: this.opts.password } : {}),
      will: {
        topic: will.topic,
        payload: typeof will.payload === "string" ? Buffer.from(will.payload) : will.payload,
        qos: will.qos,
        retain: will.retain,
      },
    });
    // A connection error with no listener would be thrown by the EventEmitter. Not reported here:
    // this client exists only beside the ingest source on the same mqtt.url (runtime.ts), which
    // logs that broker's connection errors; failed publications are counted by the callers.
    client.on("error", () => undefined);
    // Registered after the first CONNACK: fires on reconnects only. The broker published the will
    // when the connection was lost [MQTT-3.1.2-8], so the retained status says offline until the
    // caller publishes it again.
    client.once("connect", () => {
      if (onReconnect) client.on("connect", () => onReconnect());
    });
    try {
      // "timeout": the broker did not answer (yet); mqtt.js reconnects and queues meanwhile.
      await firstConnack(
        client,
        this.opts.connectWaitMs?.() ?? this.opts.connectTimeoutMs ?? 10_000,
        this.opts.startSignal,
      );
    } catch (e) {
      throw new PublishError(redactUrl(this.opts.url), `cannot connect: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#client = client;
  }

  publish(msg: EncodedMessage): Promise<void> {
    const { topic, payload } = msg;
    const c = this.#client;
    if (!c) {
      this.counters.failed++;
      return Promise.reject(new PublishError(topic, "not connected (open() first)"));
    }
    if (this.#inFlight >= this.#max) {
      this.counters.dropped++;
      return Promise.reject(new PublishError(topic, `dropped: ${this.#max} publications await PUBACK`));
    }
    this.#inFlight++;
    return new Promise((resolve, reject) => {
      c.publish(topic, payload, { qos: msg.qos, retain: msg.retain }, (err) => {
        this.#inFlight--;
        if (err) {
          this.counters.failed++;
          reject(new PublishError(topic, err.message, { cause: err }));
        } else {
          this.counters.published++;
          resolve();
        }
      });
    });
  }

  /**
   * Closes without waiting for acknowledgements: the caller has waited for its publications
   * (AlertService.stop, within the stop's one deadline). Connected with nothing in flight: a
   * DISCONNECT, which discards the will (bounded by connectTimeoutMs: a socket that no longer
   * drains). Otherwise the connection just ends: no PUBACK can come while disconnected, and the
   * broker publishes the will (offline) when it had the connection.
   */
  async close(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    if (!c) return;
    if (c.connected && this.#inFlight === 0) {
      if (await settlesWithin(c.endAsync(), this.opts.connectTimeoutMs ?? 10_000)) return;
    }
    await c.endAsync(true);
  }
}
