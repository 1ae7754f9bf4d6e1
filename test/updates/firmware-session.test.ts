/**
 * FirmwareSession (gateway/src/updates/firmware) against the simulated MCU bootloader
 * (device-sim/src/firmware) over an in-memory link with fake timers: every frame goes through
 * the real codec (encode, decode), the link can drop or rewrite frames, and time only moves
 * when the test says so. The real serial line is in test/interop/firmware-pty.test.ts.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import type { SimFirmware } from "../../device-sim/src/firmware/bootloader.ts";
import { PowerCut } from "../../device-sim/src/firmware/bootloader.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  FwAckStatus,
  FwReason,
  FwResult,
  FwState,
  type FirmwareFrame,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import { FirmwareUpdateError } from "../../gateway/src/updates/firmware/errors.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import {
  fwAbortFrameArb,
  fwChunkAckFrameArb,
  fwChunkFrameArb,
  fwOfferFrameArb,
  fwStatusFrameArb,
} from "../helpers/frames.ts";
import {
  MemoryFirmwareProgressStore,
  type FirmwareProgress,
  type FirmwareProgressStore,
} from "../../gateway/src/updates/firmware/progress.ts";
import {
  FirmwareSession,
  type FirmwareProgressEvent,
  type FirmwareSessionOptions,
  type FirmwareTimers,
} from "../../gateway/src/updates/firmware/session.ts";

const DEVICE = 42;
/** A device's FW_STATUS for release 7, receiving from offset 0 (tests override fields). */
const RECEIVING_7 = {
  type: FrameType.FwStatus,
  deviceId: DEVICE,
  state: FwState.Receiving,
  result: FwResult.None,
  reason: 0,
  window: 4,
  releaseId: 7,
  nextOffset: 0,
  slotSize: 1 << 20,
  securityCounter: 0,
  firmware: { major: 1, minor: 0, patch: 0 },
  maxChunk: 224,
} as const;
const timers: FirmwareTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
};

function image(minor: number, counter: number, bytes = 20_000): Buffer {
  const body = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) body[i] = (i * 7 + minor) & 0xff;
  return buildFirmwareImage({ version: { major: 1, minor, patch: 0 }, securityCounter: counter, body });
}

interface LinkOptions {
  /** Drops a gateway → device frame (n counts the frames of that type so far). */
  drop?: (f: Frame, n: number) => boolean;
  /** Drops a device → gateway frame. */
  dropReply?: (f: Frame, n: number) => boolean;
  /** Rewrites a gateway → device frame. */
  tamper?: (f: Frame) => Frame;
  /** The trial image confirms itself (default true); a bad one is reset by the watchdog. */
  confirms?: boolean;
  /** The device never resets after READY. */
  noReboot?: boolean;
  /** The device answers nothing at all. */
  mute?: boolean;
}

/** A gateway session and a simulated MCU joined by an in-memory link (1 ms each way). */
function link(fw: SimFirmware, o: LinkOptions = {}) {
  const counts = new Map<string, number>();
  const count = (k: string) => {
    const n = (counts.get(k) ?? 0) + 1;
    counts.set(k, n);
    return n;
  };
  const hellos: string[] = [];
  let session: FirmwareSession | undefined;
  const toGateway = (f: Frame) => {
    const frame = decodeFrame(encodeFrame(f));
    if (o.dropReply?.(frame, count(`r${frame.type}`))) return;
    setTimeout(() => session?.handle(frame), 1);
  };
  const boot = () => {
    for (;;) {
      try {
        fw.boot();
        break;
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        fw.powerCut();
      }
    }
    const v = fw.running?.version;
    hellos.push(v ? `${v.major}.${v.minor}.${v.patch}` : "none");
    toGateway(fw.status());
    if (!fw.trial) return;
    if (o.confirms ?? true)
      setTimeout(() => {
        fw.confirm();
        toGateway(fw.status());
      }, 5);
    else setTimeout(boot, 1000); // watchdog
  };
  const toDevice = (f: FirmwareFrame) => {
    let frame = decodeFrame(encodeFrame(f));
    if (o.mute) return;
    if (o.drop?.(frame, count(`d${frame.type}`))) return;
    if (o.tamper) frame = o.tamper(frame);
    setTimeout(() => {
      const r = fw.handle(frame);
      if (r.powerCut) {
        fw.powerCut();
        boot();
        return;
      }
      if (r.reply) toGateway(r.reply);
      if (r.reboot && !o.noReboot) setTimeout(boot, 10);
    }, 1);
  };
  const start = (img: Uint8Array, extra: Partial<FirmwareSessionOptions> = {}) => {
    session = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 7,
      image: img,
      send: toDevice,
      timers,
      ...extra,
    });
    return session;
  };
  return {
    hellos,
    start,
    boot,
    get session() {
      return session;
    },
    /** Replaces the session (a gateway restart) without telling the device. */
    replace: (img: Uint8Array, extra: Partial<FirmwareSessionOptions> = {}) => start(img, extra),
  };
}

/** Runs fake time until the promise settles (or `limitMs` passes). */
async function settle<T>(p: Promise<T>, limitMs = 300_000): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let t = 0; t < limitMs && !done; t += 50) await vi.advanceTimersByTimeAsync(50);
  return p;
}

async function failure(p: Promise<unknown>): Promise<FirmwareUpdateError> {
  try {
    await settle(p);
  } catch (e) {
    expect(e).toBeInstanceOf(FirmwareUpdateError);
    return e as FirmwareUpdateError;
  }
  throw new Error("expected the transfer to fail");
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("FirmwareSession × simulated bootloader", () => {
  it("behavior: a clean update installs, confirms, and reports every phase", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw);
    const img = image(1, 2);
    const store = new MemoryFirmwareProgressStore();
    const events: FirmwareProgressEvent[] = [];
    const s = l.start(img, { progressStore: store, onProgress: (e) => events.push(e) });
    const r = await settle(s.start());
    expect(r).toMatchObject({
      deviceId: DEVICE,
      releaseId: 7,
      firmware: { major: 1, minor: 1, patch: 0 },
      imageSize: img.length,
      bytesSent: img.length,
      retransmittedBytes: 0,
      offers: 1,
      rewinds: 0,
    });
    expect(Buffer.from(fw.flash.primary.subarray(0, img.length)).equals(img)).toBe(true);
    expect(fw.record).toMatchObject({ state: FwState.Idle, result: FwResult.Installed, securityCounter: 2 });
    expect(l.hellos).toEqual(["1.1.0"]);
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(["offering", "transferring", "installing", "done"]);
    // Progress is monotonic and ends at the image size.
    const acked = events.map((e) => e.ackedOffset);
    expect(acked).toEqual([...acked].sort((a, b) => a - b));
    expect(acked.at(-1)).toBe(img.length);
    // Persisted at phase changes and every 16 KiB, not per chunk.
    const saved = (await store.list())[0]!;
    expect(saved).toMatchObject({ deviceId: DEVICE, releaseId: 7, phase: "done", ackedOffset: img.length });
    expect(store.saves).toBeLessThan(10);
  });

  it("behavior: a dropped chunk costs one go-back-N rewind, not a restart", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, { drop: (f, n) => f.type === FrameType.FwChunk && n === 10 });
    const img = image(1, 2);
    const r = await settle(l.start(img).start());
    expect(r.rewinds).toBe(1);
    // At most the window (4 chunks of 224 bytes) is sent twice.
    expect(r.retransmittedBytes).toBeGreaterThan(0);
    expect(r.retransmittedBytes).toBeLessThanOrEqual(4 * 224);
    expect(fw.stats.outOfOrder).toBeGreaterThan(0);
  });

  it("behavior: lost acknowledgements and a lost final FW_STATUS are recovered by the timeout", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, {
      dropReply: (f, n) =>
        (f.type === FrameType.FwChunkAck && n % 7 === 0) || (f.type === FrameType.FwStatus && n === 2),
    });
    const r = await settle(l.start(image(1, 2)).start());
    expect(r.firmware.minor).toBe(1);
  });

  it("behavior: a flash read-back failure rewinds to the sector start (WRITE_FAILED)", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    let calls = 0;
    fw.faults.flashFailRate = 1;
    const l = link(fw);
    // Fail exactly one read-back: the 30th chunk.
    const orig = fw.handle.bind(fw);
    fw.handle = (f) => {
      if (f.type === FrameType.FwChunk) fw.faults.flashFailRate = ++calls === 30 ? 1 : 0;
      return orig(f);
    };
    const r = await settle(l.start(image(1, 2)).start());
    expect(fw.stats.writeFailures).toBe(1);
    expect(r.rewinds).toBe(1);
    // The sector of chunk 30 (offset 6496 → sector 4096) is sent again.
    expect(r.retransmittedBytes).toBeGreaterThanOrEqual(29 * 224 - 4096);
  });

  /** `fw` whose chunk holding byte `offset` always reads back wrong (a bad flash cell mid-sector). */
  function badCellAt(fw: SimFirmware, offset: number): void {
    const orig = fw.handle.bind(fw);
    fw.handle = (f) => {
      if (f.type === FrameType.FwChunk)
        fw.faults.flashFailRate = f.offset <= offset && offset < f.offset + f.data.length ? 1 : 0;
      return orig(f);
    };
  }

  it("error: a chunk that never reads back (mid-sector) is REFUSED FLASH_ERROR at its 3rd failure, though the chunks before it read back after each rewind", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    badCellAt(fw, 6496); // chunk 30, in the sector from 4096
    const l = link(fw);
    const e = await failure(l.start(image(1, 2)).start());
    expect(e.code).toBe("REFUSED");
    expect(e.message).toMatch(/FLASH_ERROR/);
    expect(fw.stats.writeFailures).toBe(3);
  });

  it("error: TOO_MANY_RETRIES for a device that never gives up on such a chunk: re-acknowledged bytes are no progress", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE, faults: { writeFailureLimit: Infinity } });
    badCellAt(fw, 6496);
    const l = link(fw);
    const e = await failure(l.start(image(1, 2), { maxRewinds: 8 }).start());
    expect(e.code).toBe("TOO_MANY_RETRIES");
    expect(e.message).toMatch(/8 retransmissions in a row at offset 4096/);
    expect(fw.stats.writeFailures).toBe(9);
  });

  it("error: NO_RESPONSE after 5 unanswered offers, 2 s apart", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, { mute: true });
    const t0 = Date.now();
    const e = await failure(l.start(image(1, 2)).start());
    expect(e.code).toBe("NO_RESPONSE");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(10_000);
    expect(Date.now() - t0).toBeLessThan(10_200);
  });

  it("error: TOO_MANY_RETRIES when the link loses everything after a point", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, { drop: (f) => f.type === FrameType.FwChunk && f.offset >= 8960 });
    const e = await failure(l.start(image(1, 2)).start());
    expect(e.code).toBe("TOO_MANY_RETRIES");
    expect(e.message).toMatch(/offset 8960/);
    expect(fw.record.state).toBe(FwState.Receiving); // the device keeps its progress
  });

  it("error: REFUSED OLDER_VERSION for the running version and for a lower security counter", async () => {
    const fw = factoryFirmware({
      deviceId: DEVICE,
      version: { major: 1, minor: 4, patch: 0 },
      securityCounter: 5,
    });
    let e = await failure(link(fw).start(image(4, 5)).start());
    expect([e.code, e.reason]).toEqual(["REFUSED", "OLDER_VERSION"]);
    e = await failure(link(fw).start(image(5, 4)).start());
    expect([e.code, e.reason]).toEqual(["REFUSED", "OLDER_VERSION"]);
    expect(fw.running?.version.minor).toBe(4);
  });

  it("error: REFUSED TOO_LARGE for an image larger than the slot", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE, slotSize: 16 * 1024 });
    const e = await failure(
      link(fw)
        .start(image(1, 2, 20_000))
        .start(),
    );
    expect([e.code, e.reason]).toEqual(["REFUSED", "TOO_LARGE"]);
  });

  it("error: REFUSED HASH_MISMATCH when a chunk is altered on the way (CRCs recomputed)", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, {
      tamper: (f) => {
        if (f.type !== FrameType.FwChunk || f.offset !== 4480) return f;
        const data = Uint8Array.from(f.data);
        data[3] = data[3]! ^ 0xff;
        return { ...f, data };
      },
    });
    const e = await failure(l.start(image(1, 2)).start());
    expect([e.code, e.reason]).toEqual(["REFUSED", "HASH_MISMATCH"]);
    expect(fw.running?.version.minor).toBe(0);
  });

  it("error: REVERTED NOT_CONFIRMED for an image that never confirms itself", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const l = link(fw, { confirms: false });
    const e = await failure(l.start(image(1, 2)).start());
    expect([e.code, e.reason]).toEqual(["REVERTED", "NOT_CONFIRMED"]);
    expect(l.hellos).toEqual(["1.1.0", "1.0.0"]); // trial, then the old image again
    expect(fw.record.securityCounter).toBe(1); // the factory image's, never the unconfirmed one's
  });

  it("error: REVERTED INTERRUPTED after a power cut during the install swap", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE, faults: { powerCutAfterSwapSteps: 5 } });
    const l = link(fw);
    const img = image(1, 2);
    const before = Uint8Array.from(fw.flash.primary);
    const e = await failure(l.start(img).start());
    expect([e.code, e.reason]).toEqual(["REVERTED", "INTERRUPTED"]);
    expect(Buffer.from(fw.flash.primary).equals(Buffer.from(before))).toBe(true);
    expect(l.hellos).toEqual(["1.0.0"]);
  });

  it("behavior: a power cut mid-transfer resumes at the last completed sector", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE, faults: { powerCutAtOffset: 10_000 } });
    const l = link(fw);
    const img = image(1, 2);
    const r = await settle(l.start(img).start());
    expect(fw.stats.powerCuts).toBe(1);
    // Resumed at 8192 (the sector below 10,000), so only [8192, ~10,000+window) was sent twice.
    expect(r.retransmittedBytes).toBeGreaterThan(0);
    expect(r.retransmittedBytes).toBeLessThan(10_000 - 8192 + 5 * 224);
    expect(r.firmware.minor).toBe(1);
  });

  it("behavior: after a gateway restart a new session resumes from the device's offset", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const img = image(1, 2);
    const store = new MemoryFirmwareProgressStore();
    // The first gateway dies while chunks beyond 12,000 are in flight: they never arrive.
    let dead = false;
    const l = link(fw, {
      drop: (f) => dead || (f.type === FrameType.FwChunk && f.offset >= 12_000 && (dead = true)),
    });
    const first = l.start(img, { progressStore: store });
    const p1 = first.start();
    await vi.advanceTimersByTimeAsync(200);
    expect(first.phase).toBe("transferring");
    first.stop(); // the process dies: nothing more is sent
    expect((await failure(p1)).code).toBe("STOPPED");
    const saved = await store.load(DEVICE, 7);
    expect(saved?.phase).toBe("transferring");
    // The restarted gateway finds the record and offers the same release again.
    dead = false;
    const l2 = link(fw);
    const second = l2.start(img, { progressStore: store });
    const r = await settle(second.start());
    expect(r.bytesSent).toBeLessThanOrEqual(img.length - 11_872 + 224);
    expect(r.retransmittedBytes).toBe(0);
    expect((await store.load(DEVICE, 7))?.phase).toBe("done");
  });

  it("behavior: a device that already installed the release answers INSTALLED at once", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const img = image(1, 2);
    await settle(link(fw).start(img).start());
    const r = await settle(link(fw).start(img).start());
    expect(r.bytesSent).toBe(0);
    expect(r.firmware.minor).toBe(1);
  });

  it("behavior: abort() sends FW_ABORT; `restart` re-sends a release whose outcome is known", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const img = image(1, 2);
    const l = link(fw, { confirms: false });
    // Reverted once (bad image) …
    const e = await failure(l.start(img).start());
    expect(e.code).toBe("REVERTED");
    // … a plain offer repeats that outcome …
    expect((await failure(link(fw).start(img).start())).code).toBe("REVERTED");
    // … `restart` aborts first and transfers again (this time the image confirms).
    const r = await settle(link(fw).start(img, { restart: true }).start());
    expect(r.bytesSent).toBe(img.length);
    // abort() mid-transfer
    const fw2 = factoryFirmware({ deviceId: DEVICE });
    const s = link(fw2).start(img);
    const p = s.start();
    await vi.advanceTimersByTimeAsync(20);
    s.abort();
    const a = await failure(p);
    expect(a.code).toBe("ABORTED");
    await vi.advanceTimersByTimeAsync(10);
    expect(fw2.record.result).toBe(FwResult.Aborted);
  });

  it("error: INSTALL_TIMEOUT when a verified image is never installed", async () => {
    const fw = factoryFirmware({ deviceId: DEVICE });
    const e = await failure(
      link(fw, { noReboot: true }).start(image(1, 2), { installTimeoutMs: 5000 }).start(),
    );
    expect(e.code).toBe("INSTALL_TIMEOUT");
  });

  it("error: PROTOCOL when the device answers BAD_LENGTH or INSTALLED with another version", async () => {
    const img = image(1, 2);
    const replies: Frame[] = [];
    const status = RECEIVING_7;
    const s = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 7,
      image: img,
      send: (f) => replies.push(f),
      timers,
    });
    const p = s.start();
    s.handle(status);
    s.handle({
      type: FrameType.FwChunkAck,
      deviceId: DEVICE,
      releaseId: 7,
      nextOffset: 0,
      status: FwAckStatus.BadLength,
    });
    expect((await failure(p)).code).toBe("PROTOCOL");
    const s2 = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 7,
      image: img,
      send: () => undefined,
      timers,
    });
    const p2 = s2.start();
    s2.handle({
      ...status,
      state: FwState.Idle,
      result: FwResult.Installed,
      firmware: { major: 9, minor: 9, patch: 9 },
    });
    expect((await failure(p2)).message).toMatch(/runs 9\.9\.9, not 1\.1\.0/);
    const s3 = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 7,
      image: img,
      send: () => undefined,
      timers,
    });
    const p3 = s3.start();
    s3.handle({ ...status, nextOffset: img.length + 1 });
    expect((await failure(p3)).message).toMatch(/beyond the/);
  });

  it("error: REFUSED BUSY from a device that holds another release READY (its state is not this release's)", async () => {
    const s = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 8,
      image: image(1, 2),
      send: () => undefined,
      timers,
    });
    const p = s.start();
    s.handle({
      ...RECEIVING_7,
      state: FwState.Ready,
      result: FwResult.Refused,
      reason: FwReason.BUSY,
      releaseId: 8,
      nextOffset: 30_000,
    });
    const e = await failure(p);
    expect(e.code).toBe("REFUSED");
    expect(e.message).toMatch(/refused release 8: BUSY/);
  });

  it("behavior: frames of other devices, of other types and chunk acks of another release are not consumed", () => {
    const s = new FirmwareSession({
      deviceId: DEVICE,
      releaseId: 7,
      image: image(1, 2),
      send: () => undefined,
      timers,
    });
    expect(s.handle({ type: FrameType.Ack, deviceId: DEVICE, firstSeq: 0, count: 1, gatewayTimeUs: 0 })).toBe(
      false,
    );
    expect(
      s.handle({
        type: FrameType.FwChunkAck,
        deviceId: 43,
        releaseId: 7,
        nextOffset: 0,
        status: FwAckStatus.Ok,
      }),
    ).toBe(false);
    // Another release's chunk ack is left to the agent, which counts it as a stray reply.
    const ack = {
      type: FrameType.FwChunkAck,
      deviceId: DEVICE,
      nextOffset: 0,
      status: FwAckStatus.Ok,
    } as const;
    expect(s.handle({ ...ack, releaseId: 8 })).toBe(false);
    expect(s.handle({ ...ack, releaseId: 7 })).toBe(true);
  });

  it("args: a file that is not a Vigil image, or a bad release id, is BAD_IMAGE before anything is sent", () => {
    const send = vi.fn();
    const make = (img: Uint8Array, releaseId = 7) =>
      new FirmwareSession({ deviceId: DEVICE, releaseId, image: img, send, timers });
    expect(() => make(new Uint8Array(10))).toThrowError(expect.objectContaining({ code: "BAD_IMAGE" }));
    const img = image(1, 2);
    const bad = Buffer.from(img);
    bad.write("XXXX", 0, "latin1");
    expect(() => make(bad)).toThrowError(/magic/);
    expect(() => make(img.subarray(0, img.length - 1))).toThrowError(/header says/);
    expect(() => make(img, 0)).toThrowError(/releaseId/);
    expect(send).not.toHaveBeenCalled();
  });

  it("behavior: a failing progress store is reported, and the transfer still completes", async () => {
    const failing: FirmwareProgressStore = {
      load: () => Promise.resolve(undefined),
      save: (_p: FirmwareProgress) => Promise.reject(new Error("disk full")),
      delete: () => Promise.resolve(),
      list: () => Promise.resolve([]),
    };
    const errors: unknown[] = [];
    const fw = factoryFirmware({ deviceId: DEVICE });
    const r = await settle(
      link(fw)
        .start(image(1, 2), {
          progressStore: failing,
          onProgress: (e) => {
            if (e.persistError) errors.push(e.persistError);
          },
        })
        .start(),
    );
    expect(r.firmware.minor).toBe(1);
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe("garbage: random firmware frames", () => {
  it("property: never crash the session; it only ever fails with a typed error", async () => {
    const ours = <T extends { deviceId: number; releaseId: number }>(a: fc.Arbitrary<T>) =>
      fc.tuple(a, fc.boolean()).map(([f, mine]) => (mine ? { ...f, deviceId: DEVICE, releaseId: 7 } : f));
    const frames = fc.array(fc.oneof(ours(fwStatusFrameArb), ours(fwChunkAckFrameArb)), { maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(frames, async (fs) => {
        const sent: Frame[] = [];
        const s = new FirmwareSession({
          deviceId: DEVICE,
          releaseId: 7,
          image: image(1, 2, 3000),
          send: (f) => sent.push(f),
          timers,
        });
        let error: unknown;
        s.start().catch((e: unknown) => (error = e));
        for (const f of fs) s.handle(f);
        await vi.advanceTimersByTimeAsync(1);
        if (error !== undefined) expect(error).toBeInstanceOf(FirmwareUpdateError);
        // Whatever it sent is a valid frame within the image.
        for (const f of sent) {
          expect(() => encodeFrame(f)).not.toThrow();
          if (f.type === FrameType.FwChunk) expect(f.offset + f.data.length).toBeLessThanOrEqual(3032);
        }
        s.stop();
      }),
      { numRuns: 300 },
    );
  });

  it("property: never crash the simulated bootloader; every reply encodes", () => {
    const fw = factoryFirmware({ deviceId: DEVICE, slotSize: 16 * 1024, sectorSize: 1024 });
    const toUs = <T extends { deviceId: number }>(a: fc.Arbitrary<T>) =>
      fc.tuple(a, fc.boolean()).map(([f, mine]) => (mine ? { ...f, deviceId: DEVICE } : f));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(toUs(fwOfferFrameArb), toUs(fwChunkFrameArb), toUs(fwAbortFrameArb)), {
          maxLength: 30,
        }),
        (frames) => {
          for (const f of frames) {
            const r = fw.handle(f);
            if (r.reply) expect(() => encodeFrame(r.reply!)).not.toThrow();
            if (r.reboot) fw.boot();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
