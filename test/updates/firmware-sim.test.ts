/**
 * The simulated MCU bootloader (device-sim/src/firmware) frame by frame: the device rules of
 * hardware/PROTOCOL.md ("Firmware update", "Device rules"), the same cases the C reference's
 * host test (hardware/firmware-ref/test/test_fwu.c) checks for vigil_fwu.c.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import { PowerCut, type SimFirmware } from "../../device-sim/src/firmware/bootloader.ts";
import {
  FrameType,
  FwAckStatus,
  FwReason,
  FwResult,
  FwState,
  type FwChunkAckFrame,
  type FwOfferFrame,
  type FwStatusFrame,
} from "../../gateway/src/protocol/frame.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";

const ID = 42;

function image(minor: number, counter: number, bytes = 9000): Buffer {
  const body = new Uint8Array(bytes).map((_, i) => (i * 13 + minor) & 0xff);
  return buildFirmwareImage({ version: { major: 1, minor, patch: 0 }, securityCounter: counter, body });
}

function offerOf(img: Buffer, releaseId = 7): FwOfferFrame {
  return {
    type: FrameType.FwOffer,
    deviceId: ID,
    releaseId,
    firmware: { major: img[6]!, minor: img[7]!, patch: img.readUInt16LE(8) },
    securityCounter: img.readUInt32LE(12),
    imageSize: img.length,
    sha256: createHash("sha256").update(img).digest(),
  };
}

function status(fw: SimFirmware, f: Parameters<SimFirmware["handle"]>[0]): FwStatusFrame {
  const r = fw.handle(f).reply;
  expect(r?.type).toBe(FrameType.FwStatus);
  return r as FwStatusFrame;
}

function chunk(fw: SimFirmware, img: Buffer, offset: number, len = 224, releaseId = 7) {
  return fw.handle({
    type: FrameType.FwChunk,
    deviceId: ID,
    releaseId,
    offset,
    data: img.subarray(offset, offset + len),
  });
}

/** Sends every chunk in order; returns the final FW_STATUS. */
function transfer(fw: SimFirmware, img: Buffer, releaseId = 7): FwStatusFrame {
  let st = status(fw, offerOf(img, releaseId));
  let o = st.nextOffset;
  for (;;) {
    const r = chunk(fw, img, o, Math.min(224, img.length - o), releaseId);
    if (r.reply?.type === FrameType.FwStatus) return (st = r.reply);
    o = (r.reply as FwChunkAckFrame).nextOffset;
  }
}

describe("simulated bootloader (device rules)", () => {
  it("behavior: FW_STATUS after power-on names the running firmware, counter and capabilities", () => {
    const fw = factoryFirmware({
      deviceId: ID,
      version: { major: 1, minor: 2, patch: 7 },
      securityCounter: 11,
    });
    expect(fw.status()).toEqual({
      type: FrameType.FwStatus,
      deviceId: ID,
      state: FwState.Idle,
      result: FwResult.None,
      reason: 0,
      window: 4,
      releaseId: 0,
      nextOffset: 0,
      slotSize: 128 * 1024,
      securityCounter: 11,
      firmware: { major: 1, minor: 2, patch: 7 },
      maxChunk: 224,
    });
  });

  it("behavior: install, trial, confirm; the offer is idempotent afterwards", () => {
    const fw = factoryFirmware({ deviceId: ID });
    const img = image(1, 2);
    const st = transfer(fw, img);
    expect(st).toMatchObject({ state: FwState.Ready, nextOffset: img.length, releaseId: 7 });
    expect(fw.boot()).toBe("trial");
    expect(fw.status()).toMatchObject({
      state: FwState.Testing,
      firmware: { minor: 1 },
      nextOffset: img.length,
    });
    expect(fw.confirm()).toBe(true);
    expect(fw.status()).toMatchObject({
      state: FwState.Idle,
      result: FwResult.Installed,
      securityCounter: 2,
    });
    expect(fw.boot()).toBe("ok");
    expect(status(fw, offerOf(img))).toMatchObject({ result: FwResult.Installed, releaseId: 7 });
  });

  it("behavior: chunk rules — OUT_OF_ORDER, BAD_LENGTH, another release, resume offsets", () => {
    const fw = factoryFirmware({ deviceId: ID });
    const img = image(1, 2);
    expect(status(fw, offerOf(img))).toMatchObject({ state: FwState.Receiving, nextOffset: 0 });
    for (let o = 0; o < 224 * 20; o += 224)
      expect(chunk(fw, img, o).reply).toMatchObject({ status: FwAckStatus.Ok });
    expect(chunk(fw, img, 224 * 21).reply).toMatchObject({
      status: FwAckStatus.OutOfOrder,
      nextOffset: 224 * 20,
    });
    expect(chunk(fw, img, 224 * 19).reply).toMatchObject({
      status: FwAckStatus.OutOfOrder,
      nextOffset: 224 * 20,
    });
    expect(chunk(fw, img, 224 * 20, 100).reply).toMatchObject({ status: FwAckStatus.BadLength });
    expect(chunk(fw, img, 224 * 20, 224, 99).reply).toMatchObject({ type: FrameType.FwStatus, releaseId: 7 });
    // disconnect: same offer, same offset (RAM)
    expect(status(fw, offerOf(img))).toMatchObject({ state: FwState.Receiving, nextOffset: 224 * 20 });
    // power cut: resume at the sector boundary below (4480 → 4096)
    fw.powerCut();
    fw.boot();
    expect(status(fw, offerOf(img))).toMatchObject({ state: FwState.Receiving, nextOffset: 4096 });
  });

  it("error: refusals — hash, older version or counter, too large, header, busy", () => {
    const fw = factoryFirmware({
      deviceId: ID,
      version: { major: 1, minor: 3, patch: 0 },
      securityCounter: 3,
    });
    const bad = offerOf(image(4, 4));
    bad.sha256 = new Uint8Array(32);
    const img = image(4, 4);
    let st = status(fw, bad);
    for (let o = 0; o < img.length; o += 224) {
      const r = chunk(fw, img, o, Math.min(224, img.length - o)).reply;
      if (r?.type === FrameType.FwStatus) st = r;
    }
    expect(st).toMatchObject({ result: FwResult.Refused, reason: FwReason.HASH_MISMATCH });
    expect(status(fw, offerOf(image(3, 9)))).toMatchObject({ reason: FwReason.OLDER_VERSION }); // same version
    expect(status(fw, offerOf(image(5, 2)))).toMatchObject({ reason: FwReason.OLDER_VERSION }); // counter 2 < 3
    expect(status(fw, { ...offerOf(image(5, 5)), imageSize: 1 << 20 })).toMatchObject({
      reason: FwReason.TOO_LARGE,
    });
    expect(status(fw, { ...offerOf(image(5, 5)), imageSize: 20 })).toMatchObject({
      reason: FwReason.BAD_IMAGE,
    });
    // a newer image with a higher counter is accepted after all those refusals
    expect(transfer(fw, image(5, 5), 8)).toMatchObject({ state: FwState.Ready, result: FwResult.None });
    // the header disagrees with the offer (the hash matches the bytes)
    const fw2 = factoryFirmware({ deviceId: ID });
    const lying = { ...offerOf(image(6, 6), 9), firmware: { major: 1, minor: 7, patch: 0 } };
    status(fw2, lying);
    let last: FwStatusFrame | undefined;
    const im6 = image(6, 6);
    for (let o = 0; o < im6.length; o += 224) {
      const r = chunk(fw2, im6, o, Math.min(224, im6.length - o), 9).reply;
      if (r?.type === FrameType.FwStatus) last = r;
    }
    expect(last).toMatchObject({ result: FwResult.Refused, reason: FwReason.BAD_IMAGE });
    // BUSY while an install is pending; nothing changes
    expect(transfer(fw2, image(6, 6), 10).state).toBe(FwState.Ready);
    expect(status(fw2, offerOf(image(7, 7), 11))).toMatchObject({
      state: FwState.Ready,
      releaseId: 11,
      result: FwResult.Refused,
      reason: FwReason.BUSY,
    });
    expect(fw2.record.releaseId).toBe(10);
  });

  it("behavior: abort — receiving or ready becomes ABORTED; a trial cannot be aborted; abort then offer restarts", () => {
    const fw = factoryFirmware({ deviceId: ID });
    const img = image(1, 2);
    status(fw, offerOf(img));
    chunk(fw, img, 0);
    const abort = { type: FrameType.FwAbort, deviceId: ID, releaseId: 7, reason: 1 } as const;
    expect(status(fw, abort)).toMatchObject({ state: FwState.Idle, result: FwResult.Aborted });
    expect(status(fw, offerOf(img))).toMatchObject({ state: FwState.Receiving, nextOffset: 0 });
    transfer(fw, img);
    expect(fw.boot()).toBe("trial");
    expect(status(fw, abort)).toMatchObject({ state: FwState.Testing });
    expect(fw.boot()).toBe("reverted"); // not confirmed
    expect(status(fw, offerOf(img))).toMatchObject({
      result: FwResult.Reverted,
      reason: FwReason.NOT_CONFIRMED,
    });
    expect(status(fw, abort)).toMatchObject({ result: FwResult.Aborted });
    expect(status(fw, offerOf(img))).toMatchObject({ state: FwState.Receiving });
  });

  it("behavior: a power cut at any step of the install swap rolls back to the old image, bit for bit", () => {
    const img = image(1, 2, 30_000);
    for (let steps = 0; steps <= 3 * 8; steps++) {
      const fw = factoryFirmware({ deviceId: ID, faults: { powerCutAfterSwapSteps: steps } });
      const before = Buffer.from(fw.flash.primary);
      transfer(fw, img);
      let outcome;
      try {
        outcome = fw.boot();
      } catch (e) {
        expect(e).toBeInstanceOf(PowerCut);
        fw.powerCut();
        outcome = fw.boot();
      }
      if (outcome === "trial") {
        // the cut came after the last step: the install completed
        expect(Buffer.from(fw.flash.primary.subarray(0, img.length)).equals(img)).toBe(true);
        continue;
      }
      expect(outcome).toBe("reverted");
      expect(fw.status()).toMatchObject({
        result: FwResult.Reverted,
        reason: FwReason.INTERRUPTED,
        securityCounter: 1,
      });
      expect(Buffer.from(fw.flash.primary).equals(before)).toBe(true);
    }
  });

  it("error: three read-back failures in a row give up with FLASH_ERROR; one rewinds to the sector", () => {
    const fw = factoryFirmware({ deviceId: ID, faults: { flashFailRate: 1 } });
    const img = image(1, 2);
    status(fw, offerOf(img));
    expect(chunk(fw, img, 0).reply).toMatchObject({ status: FwAckStatus.WriteFailed, nextOffset: 0 });
    expect(chunk(fw, img, 0).reply).toMatchObject({ status: FwAckStatus.WriteFailed });
    expect(chunk(fw, img, 0).reply).toMatchObject({ result: FwResult.Refused, reason: FwReason.FLASH_ERROR });
    const fw2 = factoryFirmware({ deviceId: ID });
    status(fw2, offerOf(img));
    for (let o = 0; o < 224 * 20; o += 224) chunk(fw2, img, o);
    fw2.faults.flashFailRate = 1;
    expect(chunk(fw2, img, 224 * 20).reply).toMatchObject({
      status: FwAckStatus.WriteFailed,
      nextOffset: 4096,
    });
    fw2.faults.flashFailRate = 0;
    expect(chunk(fw2, img, 4096).reply).toMatchObject({ status: FwAckStatus.Ok, nextOffset: 4096 + 224 });
  });

  it("behavior: frames for other devices and other types are ignored", () => {
    const fw = factoryFirmware({ deviceId: ID });
    expect(fw.handle({ ...offerOf(image(1, 2)), deviceId: 43 })).toEqual({});
    expect(fw.handle({ type: FrameType.Ack, deviceId: ID, firstSeq: 0, count: 1, gatewayTimeUs: 0 })).toEqual(
      {},
    );
  });
});
