/**
 * A gateway with a fleet of simulated devices in this process, for page and endpoint load tests:
 * Runtime (LevelDB store in a temp dir, embedded broker, the package's models, no chain) and
 * rotating machines publishing over MQTT at a given rate until stopped.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Simulator, type SimReport } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";

export interface Fleet {
  rt: Runtime;
  /** The live page's base URL. */
  url: string;
  /** Resolves when the simulator finished (durationS) and drained. */
  done: Promise<SimReport>;
  stop(): Promise<void>;
}

export async function startFleet(o: {
  devices: number;
  rate: number;
  durationS: number;
  seed?: number;
}): Promise<Fleet> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-fleet-"));
  const rt = new Runtime({
    config: resolveConfig({
      dataDir,
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      attest: { enabled: false },
      store: { minFreeBytes: 0, reserveBytes: 0 },
      log: { statsIntervalMs: 0 },
    }),
  });
  await rt.start();
  const abort = new AbortController();
  const sim = new Simulator({
    transport: new MqttTransport({ url: rt.embedded!.url, clientId: "fleet" }),
    devices: o.devices,
    rate: o.rate,
    durationS: o.durationS,
    // Machines degrade within the run, so health moves and alerts are raised.
    meanLife: Math.round(o.rate * o.durationS * 0.7),
    seed: o.seed ?? 5,
    signal: abort.signal,
    drainMs: 2000,
  });
  const done = sim.run();
  return {
    rt,
    url: rt.http!.url,
    done,
    async stop() {
      abort.abort();
      await done.catch(() => undefined);
      await rt.stop();
      rmSync(dataDir, { recursive: true, force: true }); // the store is 20–45 MB per fleet
    },
  };
}
