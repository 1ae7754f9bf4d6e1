/**
 * Where alerts, health and status go. Three implementations share this interface and one test
 * suite (test/alerts/publisher.suite.ts): the embedded aedes broker, an external broker through
 * mqtt.js (Mosquitto, EMQX, HiveMQ), and an in-memory fake for unit tests.
 */
export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
}

/** The gateway status message to publish as offline when the gateway disappears. */
export interface StatusWill {
  topic: string;
  /** JSON status payload with state "offline". */
  payload: string;
}

export interface PublisherCounters {
  published: number;
  failed: number;
  /** Messages dropped because `maxInFlight` publications were still unacknowledged. */
  dropped: number;
}

export interface AlertPublisher {
  readonly kind: "embedded" | "mqtt" | "fake";
  readonly counters: PublisherCounters;
  /**
   * Connects (or attaches) and arranges for `will` to be published if the gateway vanishes
   * without `close()`: a real MQTT last will for an external broker; for the embedded broker the
   * broker dies with the gateway, so nothing can be published (README.md).
   */
  open(will: StatusWill): Promise<void>;
  /** Resolves once the broker accepted the message (PUBACK for QoS 1 on mqtt.js). */
  publish(topic: string, payload: string, opts: PublishOptions): Promise<void>;
  /** Disconnects cleanly (no last will). Call after the final offline status was published. */
  close(): Promise<void>;
}

export interface PublishedMessage {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
}

/** In-memory publisher: records every message; `retained` mirrors a broker's retained store. */
export class FakePublisher implements AlertPublisher {
  readonly kind = "fake";
  readonly counters: PublisherCounters = { published: 0, failed: 0, dropped: 0 };
  readonly messages: PublishedMessage[] = [];
  readonly retained = new Map<string, string>();
  will: StatusWill | undefined;
  opened = false;
  closed = false;
  /** When set, publish() rejects with it. */
  failWith: Error | undefined;

  open(will: StatusWill): Promise<void> {
    this.will = will;
    this.opened = true;
    return Promise.resolve();
  }

  publish(topic: string, payload: string, opts: PublishOptions): Promise<void> {
    if (this.failWith) {
      this.counters.failed++;
      return Promise.reject(this.failWith);
    }
    this.messages.push({ topic, payload, qos: opts.qos, retain: opts.retain });
    if (opts.retain) this.retained.set(topic, payload);
    this.counters.published++;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Simulates an abrupt disconnect: the broker publishes the will. */
  crash(): void {
    if (this.will) this.retained.set(this.will.topic, this.will.payload);
  }

  on(topicSuffix: string): PublishedMessage[] {
    return this.messages.filter((m) => m.topic.endsWith(topicSuffix));
  }
}
