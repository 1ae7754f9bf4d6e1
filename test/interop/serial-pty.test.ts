/**
 * Serial ingest over a real pty pair (socat): the simulator writes COBS frames on one end,
 * the gateway's SerialSource (serialport) reads the other and answers ACK/NACK frames.
 */
import { describe, expect, it, vi } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { SerialTransport } from "../../device-sim/src/transports/serial.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { SerialSource } from "../../gateway/src/ingest/serial/serial-source.ts";
import { ptyPair, type PtyPair } from "../helpers/procs.ts";
import { reconcile, reconciliationSuite, type ReconcileEnv } from "../helpers/reconcile.ts";
import { ingestRig } from "../helpers/rig.ts";

async function serialEnv(): Promise<ReconcileEnv & { pty: PtyPair }> {
  const pty = await ptyPair();
  const sink = new MemorySink();
  const gateway = ingestRig({ sink, serial: [pty.b] });
  await gateway.start();
  return {
    pty,
    sink,
    gateway,
    transport: () => new SerialTransport({ path: pty.a }),
    stop: async () => {
      await gateway.stop();
      await pty.stop();
    },
  };
}

reconciliationSuite("a real pty pair (socat)", serialEnv);

describe("serial port unplugged", () => {
  it("behavior: the gateway reopens the port with backoff and nothing acknowledged is lost", async () => {
    const env = await serialEnv();
    let pty2: PtyPair | undefined;
    try {
      const source = env.gateway.sources[0] as SerialSource;
      const sim = new Simulator({
        transport: new SerialTransport({ path: env.pty.a }),
        devices: 2,
        framesPerDevice: 100,
        rate: 0,
        seed: 3,
      });
      reconcile(await sim.run(), env);
      // Pull the cable: the pty pair disappears; the gateway must notice and keep retrying.
      await env.pty.stop();
      await vi.waitFor(() => expect(source.isOpen).toBe(false), 5000);
      // Plug it back in (same link names), and the same devices carry on.
      pty2 = await ptyPairAt(env.pty);
      await vi.waitFor(() => expect(source.isOpen).toBe(true), 10_000);
      expect(source.stats().reopens).toBeGreaterThanOrEqual(1);
      const sim2 = new Simulator({
        transport: new SerialTransport({ path: env.pty.a }),
        devices: 2,
        framesPerDevice: 100,
        rate: 0,
        seed: 4,
        firstDeviceId: 10,
      });
      const r2 = await sim2.run();
      expect(r2.acked).toBe(200);
      expect(env.sink.records).toHaveLength(400);
    } finally {
      await env.gateway.stop();
      await pty2?.stop();
    }
  });
});

async function ptyPairAt(old: PtyPair): Promise<PtyPair> {
  const { dirname } = await import("node:path");
  return ptyPair(dirname(old.a));
}
