/**
 * An ingest rig for transport tests: Ingest over a sink, plus the sources a test asks for
 * (embedded broker, serial ports, an external broker). The product wires these in runtime.ts;
 * tests of one transport build just what they need.
 */
import type { FrameSink } from "../../gateway/src/core/records.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { ExternalMqttSource } from "../../gateway/src/ingest/mqtt/external-source.ts";
import { SerialSource } from "../../gateway/src/ingest/serial/serial-source.ts";
import type { IngestSource } from "../../gateway/src/ingest/source.ts";

export interface RigOptions {
  sink: FrameSink;
  embedded?: boolean;
  serial?: string[];
  mqttUrl?: string;
  clientId?: string;
}

export interface Rig {
  ingest: Ingest;
  sources: IngestSource[];
  embedded: EmbeddedBroker | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function ingestRig(o: RigOptions): Rig {
  const ingest = new Ingest({ sink: o.sink });
  const sources: IngestSource[] = [];
  for (const path of o.serial ?? []) sources.push(new SerialSource(ingest, { path }));
  const embedded = o.embedded ? new EmbeddedBroker(ingest, { port: 0 }) : undefined;
  if (embedded) sources.push(embedded);
  if (o.mqttUrl)
    sources.push(new ExternalMqttSource(ingest, { url: o.mqttUrl, clientId: o.clientId ?? "vigil-gw" }));
  return {
    ingest,
    sources,
    embedded,
    async start() {
      for (const s of sources) await s.start();
    },
    async stop() {
      for (const s of [...sources].reverse()) await s.stop();
    },
  };
}
