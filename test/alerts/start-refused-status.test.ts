/**
 * A broker that drops the connection instead of acknowledging the gateway's `online` status (its
 * access rules refuse the status topic: MQTT 3.1.1 has no negative PUBACK, so aedes closes the
 * connection) must not hold the gateway's start forever: the client reconnects and resends, and
 * before the bound the start never finished and SIGTERM was ignored. Real aedes on loopback.
 */
import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";

let broker: Aedes;
let server: Server;
let port: number;
let refused = 0;

beforeAll(async () => {
  broker = await Aedes.createBroker({
    authorizePublish: (_client, packet, cb) => {
      if (packet.topic.endsWith("/status")) {
        refused++;
        cb(new Error("not allowed"));
      } else cb(null);
    },
  });
  server = createServer((s) => broker.handle(s));
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((res) => broker.close(() => res()));
  await new Promise<void>((res) => server.close(() => res()));
});

describe("a broker that refuses the gateway's status topic", () => {
  it("behavior: the gateway starts (degraded: the status keeps trying, a publish error is counted) and stops cleanly", async () => {
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 },
        dataDir: "/nonexistent-vigil-test",
        mqtt: { url: `mqtt://127.0.0.1:${port}`, embedded: { enabled: false }, connectTimeoutMs: 500 },
        attest: { enabled: false },
        models: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
      store: new MemoryFrameStore(),
    });
    await rt.start();
    expect(rt.phase()).toBe("running");
    expect(refused).toBeGreaterThanOrEqual(1);
    expect(rt.alerts.counters.publishErrors).toBeGreaterThanOrEqual(1);
    await rt.stop();
    expect(rt.phase()).toBe("stopped");
  }, 30_000);
});
