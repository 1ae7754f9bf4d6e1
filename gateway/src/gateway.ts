/**
 * The gateway process: wires ingest sources (serial ports, embedded broker, external broker)
 * into the ingest stage and its durable sink. Later stages (infer, attest, anchor) hang off
 * the same sink.
 */
import type { GatewayConfig } from "./config/config.ts";
import { deviceSet } from "./config/config.ts";
import type { VigilError } from "./core/errors.ts";
import { Ingest } from "./ingest/ingest.ts";
import { EmbeddedBroker } from "./ingest/mqtt/embedded-broker.ts";
import { ExternalMqttSource } from "./ingest/mqtt/external-source.ts";
import { SerialSource } from "./ingest/serial/serial-source.ts";
import type { FrameSink } from "./core/records.ts";
import type { IngestSource } from "./ingest/source.ts";
import { systemClock, type Clock } from "./core/clock.ts";
import type { Logger } from "./core/log.ts";

export interface GatewayOptions {
  config: GatewayConfig;
  sink: FrameSink;
  clock?: Clock;
  log?: Logger;
  /** Log the ingest counter line every log.statsIntervalMs. Default true (the runtime logs its own). */
  logStats?: boolean;
  /** Slow-path duplicate check (see IngestOptions.isStored). */
  isStored?: (deviceId: number, seq: number) => Promise<boolean>;
}

export class Gateway {
  readonly ingest: Ingest;
  readonly sources: IngestSource[] = [];
  embedded: EmbeddedBroker | undefined;
  readonly #opts: GatewayOptions;
  #statsTimer: NodeJS.Timeout | undefined;

  constructor(opts: GatewayOptions) {
    this.#opts = opts;
    const c = opts.config;
    this.ingest = new Ingest({
      sink: opts.sink,
      clock: opts.clock ?? systemClock,
      ...(c.ingest.allow ? { allow: deviceSet(c.ingest.allow) } : {}),
      revoked: deviceSet(c.ingest.revoked),
      maxSkewUs: c.ingest.maxSkewMs * 1000,
      ...(opts.isStored ? { isStored: opts.isStored } : {}),
    });
    const onError = (e: VigilError) => opts.log?.warn({ code: e.code }, e.shortMessage);
    for (const s of c.serial) {
      this.sources.push(
        new SerialSource(this.ingest, {
          path: s.path,
          baudRate: s.baudRate,
          onError,
          ...(opts.clock ? { clock: opts.clock } : {}),
        }),
      );
    }
    if (c.mqtt.embedded.enabled) {
      this.embedded = new EmbeddedBroker(this.ingest, {
        host: c.mqtt.embedded.host,
        port: c.mqtt.embedded.port,
        onError,
      });
      this.sources.push(this.embedded);
    }
    if (c.mqtt.url) {
      this.sources.push(
        new ExternalMqttSource(this.ingest, {
          url: c.mqtt.url,
          clientId: c.mqtt.clientId,
          ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
          ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
          onError,
        }),
      );
    }
  }

  async start(): Promise<void> {
    for (const s of this.sources) {
      await s.start();
      this.#opts.log?.info({ source: s.name }, "source started");
    }
    const every = this.#opts.config.log.statsIntervalMs;
    if (this.#opts.log && every > 0 && this.#opts.logStats !== false) {
      this.#statsTimer = setInterval(
        () => this.#opts.log?.info({ ingest: this.ingest.counters.line() }, "stats"),
        every,
      );
      this.#statsTimer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#statsTimer);
    for (const s of [...this.sources].reverse()) await s.stop();
  }

  /** Source-level counters by source name. */
  sourceStats(): Record<string, Record<string, number>> {
    return Object.fromEntries(this.sources.map((s) => [s.name, s.stats()]));
  }
}
