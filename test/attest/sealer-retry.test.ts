/**
 * The sealer's trigger after failed seals: each failure is reported once, and the next check waits
 * twice as long (up to 30 s) instead of retrying every pollMs; one success returns to pollMs. The
 * timers are a fake that records each wait and fires when the test says.
 */
import { describe, expect, it, vi } from "vitest";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { record } from "../store/abstract.ts";

describe("batch sealer retries", () => {
  it("error: a seal that keeps failing is retried after 100, 200, 400 … ms, at most 30 s, each failure reported once; a success returns to the poll period", async () => {
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    for (let seq = 0; seq < 3; seq++) await store.append(record(1, seq));
    const real = new GatewaySigner(generateKey("secp256k1"));
    let failing = true;
    // The signing step fails, as a store write or a full disk would: the seal throws.
    const signer = {
      sign: (d: Hex) => {
        if (failing) throw new Error("the keystore device is gone");
        return real.sign(d);
      },
      info: () => real.info(),
    } as unknown as GatewaySigner;
    const waits: number[] = [];
    let due: (() => void) | undefined;
    const errors: unknown[] = [];
    const sealer = new BatchSealer({
      store,
      signer,
      gatewayId: `0x${"ab".repeat(32)}`,
      domain: vigilDomain(31337n, `0x${"cd".repeat(20)}`),
      intervalMs: 0,
      pollMs: 100,
      timers: {
        setTimeout: (fn, ms) => {
          waits.push(ms);
          due = fn;
          return waits.length;
        },
        clearTimeout: () => undefined,
      },
      onError: (e) => errors.push(e),
    });
    sealer.start();
    const fire = async (): Promise<void> => {
      const n = waits.length;
      const f = due!;
      due = undefined;
      f();
      await vi.waitFor(() => expect(waits.length).toBe(n + 1), { interval: 1 });
    };
    for (let i = 0; i < 10; i++) await fire();
    expect(waits).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
    expect(errors).toHaveLength(10);
    failing = false;
    await fire();
    expect(waits.at(-1)).toBe(100);
    expect(store.sealedThrough()).toBe(3);
    await sealer.stop();
    await store.close();
  });
});
