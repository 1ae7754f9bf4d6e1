/**
 * Publishes through the gateway's embedded aedes broker as the gateway itself (bypassing
 * `authorizePublish`, which refuses client publications under vigil/v1/).
 *
 * Last will: MQTT's will is sent by a broker when a *client* vanishes [MQTT-3.1.2-8]. Here the
 * gateway is the broker, so when the process dies the broker and its retained messages die
 * with it and dashboards see their TCP connection drop instead. What we can do is publish
 * `online` (retained) at start and `offline` (retained) at a clean stop, before the broker
 * closes. Use an external broker (MqttClientPublisher) when dashboards must see a crash as a
 * retained `offline`.
 */
import type { EmbeddedBroker } from "../ingest/mqtt/embedded-broker.ts";
import { VigilError } from "../core/errors.ts";
import type { AlertPublisher, EncodedMessage, PublisherCounters } from "./publisher.ts";

export class PublishError extends VigilError {
  override name = "PublishError";
  constructor(topic: string, message: string, opts: { cause?: unknown } = {}) {
    super("MQTT_PUBLISH_FAILED", `${topic}: ${message}`, opts);
  }
}

export class EmbeddedPublisher implements AlertPublisher {
  readonly kind = "embedded";
  readonly counters: PublisherCounters = { published: 0, failed: 0, dropped: 0 };

  constructor(private readonly broker: EmbeddedBroker) {}

  open(_will: EncodedMessage): Promise<void> {
    if (!this.broker.broker)
      return Promise.reject(new PublishError("(embedded)", "the embedded broker is not started"));
    return Promise.resolve();
  }

  publish(msg: EncodedMessage): Promise<void> {
    const { topic, payload, qos, retain } = msg;
    const aedes = this.broker.broker;
    if (!aedes) {
      this.counters.failed++;
      return Promise.reject(new PublishError(topic, "the embedded broker is stopped"));
    }
    return new Promise((resolve, reject) => {
      aedes.publish(
        {
          cmd: "publish",
          topic,
          payload: typeof payload === "string" ? Buffer.from(payload) : payload,
          qos,
          retain,
          dup: false,
        },
        (err?: Error) => {
          if (err) {
            this.counters.failed++;
            reject(new PublishError(topic, err.message, { cause: err }));
          } else {
            this.counters.published++;
            resolve();
          }
        },
      );
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
