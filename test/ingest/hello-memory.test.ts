/**
 * A device's last HELLO is kept in the store and given back at start (ingest/hello-memory.ts): a
 * gateway restarted while a serial device runs on knows the device's profile, channels and
 * firmware before the device's next HELLO, so its model runs on the first DATA frame. Before, no
 * model ran for such a device until it rebooted (hostile-client audit, side observation).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { keepHellos } from "../../gateway/src/ingest/hello-memory.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { decodeFrame, encodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";

const DEV = 0x0a11;
const ROTATING = ["vib_rms", "vib_peak", "vib_kurt", "bearing_temp", "current", "speed"];

const hello = (bootId: number, names = ROTATING, profile = "rotating-v1"): Frame => ({
  type: FrameType.Hello,
  deviceId: DEV,
  bootId,
  firmware: { major: 1, minor: 2, patch: 3 },
  profile,
  channels: names.map((name) => ({ name, unit: 0 })),
});
const data = (seq: number, n = 6): Frame => ({
  type: FrameType.Data,
  deviceId: DEV,
  seq,
  timestampUs: 0,
  flags: 0,
  values: Float32Array.from({ length: n }, (_, i) => 1 + i + seq / 100),
});
const decoded = (f: Frame) => {
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
};

/** A store whose named-record writes can be counted and made to fail. */
function records(store: MemoryFrameStore) {
  const r = {
    puts: 0,
    fail: false,
    /** Writes finished (failed ones included). */
    putMeta: async (name: string, value: Buffer) => {
      try {
        if (r.fail) throw new Error("disk full");
        await store.putMeta(name, value);
      } finally {
        r.puts++;
      }
    },
    metaEntries: (prefix: string) => store.metaEntries(prefix),
  };
  return r;
}

const until = async (ok: () => boolean): Promise<void> => {
  for (let i = 0; !ok(); i++) {
    if (i > 1000) throw new Error("timed out");
    await new Promise((r) => setImmediate(r));
  }
};

describe("keepHellos", () => {
  it("behavior: a HELLO is kept once per change and restored into a new ingest: profile, channels (checked against DATA, as after a HELLO) and firmware", async () => {
    const store = new MemoryFrameStore();
    await store.open();
    const rec = records(store);
    const first = new Ingest({ sink: new MemorySink(), clock: new FakeClock() });
    expect(await keepHellos(rec, first, (e) => expect.fail(e.message))).toEqual({ restored: 0, skipped: 0 });
    first.handle(decoded(hello(7)), "serial");
    first.handle(decoded(hello(7)), "serial"); // a reconnect repeats it: nothing new to keep
    await until(() => rec.puts === 1);
    first.handle(decoded(hello(8)), "serial"); // a new boot
    await until(() => rec.puts === 2);

    const next = new Ingest({ sink: new MemorySink(), clock: new FakeClock() });
    expect(await keepHellos(rec, next, (e) => expect.fail(e.message))).toEqual({ restored: 1, skipped: 0 });
    const d = next.counters.device(DEV);
    expect([d.profile, d.channels, d.channelNames, d.firmware]).toEqual([
      "rotating-v1",
      6,
      ROTATING,
      "1.2.3",
    ]);
    expect(await next.handle(decoded(data(1)), "serial")).toMatchObject({ kind: "ack" });
    expect(await next.handle(decoded(data(2, 4)), "serial")).toMatchObject({ kind: "nack" }); // 4 ≠ 6 channels
    // Restoring adds no write; the device's next HELLO with another schema does.
    next.handle(decoded(hello(9, ["a", "b"], "other")), "serial");
    await until(() => rec.puts === 3);
    expect(next.counters.device(DEV).profile).toBe("other");
  });

  it("error: a record that cannot be read is skipped and counted; a failed write is reported and tried again at the next HELLO", async () => {
    const store = new MemoryFrameStore();
    await store.open();
    await store.putMeta("ingest/hello/00000a11", Buffer.from("{not json"));
    await store.putMeta("ingest/hello/zz", Buffer.from(JSON.stringify({ v: 1 })));
    const rec = records(store);
    const errors: string[] = [];
    const ingest = new Ingest({ sink: new MemorySink(), clock: new FakeClock() });
    expect(await keepHellos(rec, ingest, (e) => errors.push(e.message))).toEqual({ restored: 0, skipped: 2 });
    expect(ingest.counters.devices.get(DEV)?.profile).toBeUndefined();
    rec.fail = true;
    ingest.handle(decoded(hello(1)), "serial");
    await until(() => errors.length === 1);
    expect(errors).toEqual(["disk full"]);
    rec.fail = false;
    ingest.handle(decoded(hello(1)), "serial"); // the same HELLO: written now
    await until(() => rec.puts === 2);
    expect(JSON.parse((await store.getMeta("ingest/hello/00000a11"))!.toString())).toMatchObject({
      v: 1,
      bootId: 1,
      profile: "rotating-v1",
    });
  });
});

describe("Runtime restarted while a device runs on", () => {
  let rt: Runtime | undefined;
  afterEach(async () => {
    await rt?.stop();
    rt = undefined;
  });

  it("behavior: the device's model runs on its first DATA frame after the restart, with no new HELLO", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "vigil-hello-memory-"));
    const config = resolveConfig({
      dataDir,
      http: { enabled: false },
      mqtt: { embedded: { enabled: false } },
      attest: { enabled: false },
      log: { statsIntervalMs: 0 },
    });
    rt = new Runtime({ config, clock: new FakeClock() });
    await rt.start();
    rt.ingest.handle(decoded(hello(3)), "serial");
    expect(await rt.ingest.handle(decoded(data(1)), "serial")).toMatchObject({ kind: "ack" });
    await until(() => rt!.loop!.counters.devices === 1);
    await rt.stop();

    rt = new Runtime({ config, clock: new FakeClock() });
    await rt.start();
    expect(rt.ingest.counters.device(DEV).profile).toBe("rotating-v1");
    expect(await rt.ingest.handle(decoded(data(2)), "serial")).toMatchObject({ kind: "ack" });
    await until(() => rt!.loop!.counters.devices === 1);
  }, 60_000);
});
