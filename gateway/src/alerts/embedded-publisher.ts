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
    if (!this.broker.broker) {
      this.counters.failed++;
      return Promise.reject(new PublishError(topic, "the embedded broker is stopped"));
    }
    // In order with every other publication of the gateway (EmbeddedBroker.publish says why).
    return this.broker.publish(topic, payload, { qos, retain }).then(
      () => void this.counters.published++,
      (err: Error) => {
        this.counters.failed++;
        throw new PublishError(topic, err.message, { cause: err });
      },
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
