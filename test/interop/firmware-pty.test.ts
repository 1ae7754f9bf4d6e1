/**
 * Firmware updates over a real serial line: the gateway's FirmwareSession on one end of a
 * socat pty pair, the simulated MCU bootloader (device-sim/src/firmware) on the other, with a
 * relay between two pty pairs where the line itself must misbehave (tampering). Each case is
 * one line of issue 11: a clean update, resume after a disconnect, a corrupted chunk, a power
 * cut during the swap (revert), an image whose hash does not match (refused), an older
 * version (refused) — plus a power cut mid-transfer, a bad image that never confirms and a
 * gateway restart.
 */
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import {
  FirmwareSerialDevice,
  type FirmwareSerialDeviceOptions,
} from "../../device-sim/src/firmware/serial-device.ts";
import type { SimFirmware } from "../../device-sim/src/firmware/bootloader.ts";
import { FrameType, FwResult } from "../../gateway/src/protocol/frame.ts";
import { FirmwareUpdateError } from "../../gateway/src/updates/firmware/errors.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { MemoryFirmwareProgressStore } from "../../gateway/src/updates/firmware/progress.ts";
import { FirmwareSession, type FirmwareSessionOptions } from "../../gateway/src/updates/firmware/session.ts";
import { GatewayFirmwarePort } from "../helpers/firmware-link.ts";
import { ptyPair, type PtyPair } from "../helpers/procs.ts";
import { SerialRelay, type RelayOptions } from "../helpers/serial-relay.ts";

const ID = 0x0102_0304;
const IMAGE = image(1, 2, 48_000);

function image(minor: number, counter: number, bytes: number): Buffer {
  const body = new Uint8Array(bytes).map((_, i) => (i * 29 + minor) & 0xff);
  return buildFirmwareImage({ version: { major: 1, minor, patch: 0 }, securityCounter: counter, body });
}

interface Rig {
  gw: GatewayFirmwarePort;
  dev: FirmwareSerialDevice;
  fw: SimFirmware;
  session(opts?: Partial<FirmwareSessionOptions>, img?: Uint8Array): FirmwareSession;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Gateway port and simulated MCU on a pty pair (or through a relay when `relay` is given). */
async function rig(
  fw: SimFirmware,
  dev: Partial<FirmwareSerialDeviceOptions> = {},
  relay?: RelayOptions,
): Promise<Rig> {
  let gwPath: string;
  let devPath: string;
  if (relay) {
    const r = await SerialRelay.start(relay);
    cleanups.push(() => r.stop());
    gwPath = r.gatewayPath;
    devPath = r.devicePath;
  } else {
    const p: PtyPair = await ptyPair();
    cleanups.push(() => p.stop());
    gwPath = p.b;
    devPath = p.a;
  }
  const gw = new GatewayFirmwarePort(gwPath);
  await gw.open();
  cleanups.push(() => gw.close());
  const device = new FirmwareSerialDevice({ path: devPath, firmware: fw, watchdogMs: 300, ...dev });
  await device.open();
  cleanups.push(() => device.close());
  return {
    gw,
    dev: device,
    fw,
    session: (opts = {}, img = IMAGE) => {
      const s = new FirmwareSession({
        deviceId: ID,
        releaseId: 7,
        image: img,
        send: gw.send,
        ackTimeoutMs: 400,
        offerTimeoutMs: 500,
        installTimeoutMs: 10_000,
        ...opts,
      });
      gw.session = s;
      return s;
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<FirmwareUpdateError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(FirmwareUpdateError);
  return e as FirmwareUpdateError;
}

const primaryHolds = (fw: SimFirmware, img: Uint8Array) =>
  Buffer.from(fw.flash.primary.subarray(0, img.length)).equals(img);

describe("firmware update over a socat pty pair", () => {
  it("behavior: a clean update — the device comes back with the new version in its HELLO", async () => {
    const r = await rig(factoryFirmware({ deviceId: ID }));
    const result = await r.session().start();
    expect(result).toMatchObject({
      firmware: { major: 1, minor: 1, patch: 0 },
      retransmittedBytes: 0,
      offers: 1,
    });
    expect(r.gw.hellos.map((h) => h.firmware)).toEqual(["1.0.0", "1.1.0"]);
    expect(r.gw.hellos[1]!.bootId).toBe(r.gw.hellos[0]!.bootId + 1);
    expect(primaryHolds(r.fw, IMAGE)).toBe(true);
    expect(r.dev.events.boots).toEqual(["ok", "trial"]);
    const last = r.gw.received.filter((f) => f.type === FrameType.FwStatus).at(-1);
    expect(last).toMatchObject({ result: FwResult.Installed, releaseId: 7, securityCounter: 2 });
  });

  it("behavior: resume after a disconnect — the transfer continues where the device is", async () => {
    const r = await rig(factoryFirmware({ deviceId: ID }));
    let pulled = false;
    const s = r.session({
      onProgress: (p) => {
        if (!pulled && p.ackedOffset >= 20_000) {
          pulled = true;
          // Cable pulled for 300 ms (a fault, not a synchronisation wait).
          void r.dev.disconnect().then(() => setTimeout(() => void r.dev.reconnect(), 300));
        }
      },
    });
    const result = await s.start();
    expect(pulled).toBe(true);
    expect(result.firmware.minor).toBe(1);
    // Only what was in flight when the cable went (and a timeout's resend during the outage)
    // is sent twice, not the first 20 kB.
    expect(result.retransmittedBytes).toBeLessThan(4096);
    expect(result.bytesSent).toBeLessThan(IMAGE.length + 4096);
  });

  it("behavior: corrupted and dropped chunks on a flaky line are resent and the image installs", async () => {
    const r = await rig(factoryFirmware({ deviceId: ID }), {
      link: { corruptRate: 0.04, dropRate: 0.02 },
      seed: 5,
    });
    const result = await r.session({ maxRewinds: 20 }).start();
    expect(r.dev.events.linkCorrupted).toBeGreaterThan(0);
    expect(r.dev.events.rejects).toBeGreaterThan(0); // the device's CRC check caught them
    expect(result.rewinds).toBeGreaterThan(0);
    expect(primaryHolds(r.fw, IMAGE)).toBe(true);
  });

  it("error: a power cut during the swap — the old firmware comes back (REVERTED / INTERRUPTED)", async () => {
    const fw = factoryFirmware({ deviceId: ID, faults: { powerCutAfterSwapSteps: 17 } });
    const before = Buffer.from(fw.flash.primary);
    const r = await rig(fw);
    const e = await rejection(r.session().start());
    expect([e.code, e.reason]).toEqual(["REVERTED", "INTERRUPTED"]);
    expect(Buffer.from(fw.flash.primary).equals(before)).toBe(true);
    expect(r.gw.hellos.map((h) => h.firmware)).toEqual(["1.0.0", "1.0.0"]);
    expect(r.dev.events.boots).toEqual(["ok", "reverted"]);
  });

  it("error: an image whose hash does not match is refused (a relay alters one chunk, CRCs recomputed)", async () => {
    const fw = factoryFirmware({ deviceId: ID });
    const r = await rig(
      fw,
      {},
      {
        tamper: (f) => {
          if (f.type !== FrameType.FwChunk || f.offset !== 224 * 50) return f;
          const data = Uint8Array.from(f.data);
          data[0] = data[0]! ^ 0x01;
          return { ...f, data };
        },
      },
    );
    const e = await rejection(r.session().start());
    expect([e.code, e.reason]).toEqual(["REFUSED", "HASH_MISMATCH"]);
    expect(fw.running?.version.minor).toBe(0);
    expect(r.dev.events.boots).toEqual(["ok"]); // nothing was installed
  });

  it("error: an older version is refused at the offer, before any chunk", async () => {
    const fw = factoryFirmware({
      deviceId: ID,
      version: { major: 1, minor: 5, patch: 0 },
      securityCounter: 5,
    });
    const r = await rig(fw);
    const e = await rejection(r.session().start());
    expect([e.code, e.reason]).toEqual(["REFUSED", "OLDER_VERSION"]);
    expect(r.gw.received.some((f) => f.type === FrameType.FwChunkAck)).toBe(false);
  });

  it("behavior: a power cut mid-transfer — the device resumes at its last completed sector", async () => {
    const fw = factoryFirmware({ deviceId: ID, faults: { powerCutAtOffset: 30_000 } });
    const r = await rig(fw);
    const result = await r.session().start();
    expect(fw.stats.powerCuts).toBe(1);
    expect(result.retransmittedBytes).toBeGreaterThan(0);
    expect(result.retransmittedBytes).toBeLessThan(30_000 - 28_672 + 8 * 224); // from 28 KiB, not from 0
    expect(r.gw.hellos.map((h) => h.firmware)).toEqual(["1.0.0", "1.0.0", "1.1.0"]);
  });

  it("error: a bad image that never confirms is reverted by the bootloader (REVERTED / NOT_CONFIRMED)", async () => {
    const r = await rig(factoryFirmware({ deviceId: ID }), {
      confirms: (fw) => fw.running?.version.minor !== 1,
    });
    const e = await rejection(r.session().start());
    expect([e.code, e.reason]).toEqual(["REVERTED", "NOT_CONFIRMED"]);
    expect(r.gw.hellos.map((h) => h.firmware)).toEqual(["1.0.0", "1.1.0", "1.0.0"]);
  });

  it("behavior: a gateway restart mid-transfer — the new session resumes from the device's offset", async () => {
    const r = await rig(factoryFirmware({ deviceId: ID }));
    const store = new MemoryFirmwareProgressStore();
    let at = 0;
    let died!: () => void;
    const dead = new Promise<void>((res) => (died = res));
    const first = r.session({
      progressStore: store,
      onProgress: (p) => {
        if (at === 0 && p.ackedOffset >= 24_000) {
          at = p.ackedOffset;
          first.stop(); // the process dies: nothing more is sent or read by it
          r.gw.session = undefined;
          died();
        }
      },
    });
    expect((await rejection(Promise.all([first.start(), dead]))).code).toBe("STOPPED");
    const saved = await store.list();
    expect(saved.map((p) => [p.phase, p.releaseId])).toEqual([["transferring", 7]]);
    const second = r.session({ progressStore: store });
    const result = await second.start();
    expect(result.bytesSent).toBeLessThanOrEqual(IMAGE.length - at + 8 * 224);
    expect((await store.load(ID, 7))?.phase).toBe("done");
  });
});
