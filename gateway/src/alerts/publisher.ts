/**
 * Where encoded alert-stage messages go. Three implementations share this interface and one test
 * suite (test/alerts/publisher.suite.ts): the embedded aedes broker, an external broker through
 * mqtt.js (Mosquitto, EMQX, HiveMQ), and an in-memory fake for unit tests.
 */
import type { EncodedMessage } from "./encoder.ts";

export type { EncodedMessage };

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
   * broker dies with the gateway, so nothing can be published (README.md). `onReconnect` is
   * called each time a lost connection is re-established (external broker: the broker has
   * published the will meanwhile, so the caller publishes its status again).
   */
  open(will: EncodedMessage, onReconnect?: () => void): Promise<void>;
  /**
   * Whether the broker connection is up now. Absent: always (the embedded broker, the fake). An
   * external broker that did not answer open()'s wait is not: publications queue until it does.
   */
  connected?(): boolean;
  /**
   * Resolves once the broker accepted the message: PUBACK for QoS 1 from an external broker; for
   * the embedded broker, once it was written to every matching subscriber's connection.
   */
  publish(msg: EncodedMessage): Promise<void>;
  /** Disconnects cleanly (no last will). Call after the final offline status was published. */
  close(): Promise<void>;
}

/** In-memory publisher: records every message; `retained` mirrors a broker's retained store. */
export class FakePublisher implements AlertPublisher {
  readonly kind = "fake";
  readonly counters: PublisherCounters = { published: 0, failed: 0, dropped: 0 };
  readonly messages: EncodedMessage[] = [];
  readonly retained = new Map<string, string>();
  will: EncodedMessage | undefined;
  /** What open() was told to call after a reconnect (a test calls it to simulate one). */
  onReconnect: (() => void) | undefined;
  opened = false;
  closed = false;
  /** When set, publish() rejects with it. */
  failWith: Error | undefined;

  open(will: EncodedMessage, onReconnect?: () => void): Promise<void> {
    this.will = will;
    this.onReconnect = onReconnect;
    this.opened = true;
    return Promise.resolve();
  }

  publish(msg: EncodedMessage): Promise<void> {
    if (this.failWith) {
      this.counters.failed++;
      return Promise.reject(this.failWith);
    }
    this.messages.push(msg);
    if (msg.retain) this.retained.set(msg.topic, String(msg.payload));
    this.counters.published++;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Simulates an abrupt disconnect: the broker publishes the will. */
  crash(): void {
    if (this.will) this.retained.set(this.will.topic, String(this.will.payload));
  }

  on(topicSuffix: string): EncodedMessage[] {
    return this.messages.filter((m) => m.topic.endsWith(topicSuffix));
  }
}
