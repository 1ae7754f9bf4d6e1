/**
 * The firmware agent when its store fails (a full disk, an I/O error): the update stops, counted
 * and logged, and the gateway goes on. A device that goes quiet mid-transfer is resumed at its
 * next HELLO, not remembered as failed. Only devices that ingest admits are offered a release. The whole path against a device over a pty and releases on
 * anvil: test/interop/firmware-agent.test.ts.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  type Frame,
  type HelloFrame,
} from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";

const release: ReleaseRecord = {
  id: 7n,
  kind: "firmware",
  target: targetId("firmware", "sim-mcu"),
  status: "active",
  version: 1_001_000n,
  uris: ["https://127.0.0.1:9/unreachable.vgfw"],
  size: 10n,
  contentHash: `0x${"00".repeat(32)}`,
  approvals: 2,
  proposer: `0x${"11".repeat(20)}`,
} as ReleaseRecord;

const hello: HelloFrame = {
  type: FrameType.Hello,
  deviceId: 1,
  bootId: 1,
  firmware: { major: 1, minor: 0, patch: 0 },
  profile: "sim-mcu",
  channels: [],
};

describe("firmware agent with a failing store", () => {
  it("error: every store read and write fails: the update is counted as a store error and logged, nothing is offered, and the next check tries again", async () => {
    const broken = (): Promise<never> => Promise.reject(new Error("store unavailable: disk full"));
    const warnings: string[] = [];
    const agent = new FirmwareUpdateAgent({
      releases: { activeRelease: async () => release, getRelease: async () => release },
      state: { getMeta: broken, putMeta: broken, metaEntries: broken },
      dir: join(mkdtempSync(join(tmpdir(), "vigil-fw-")), "updates"),
      targetOf: () => "sim-mcu",
      log: { warn: (_o: unknown, m: string) => warnings.push(m) } as never,
    });
    const sent: unknown[] = [];
    agent.onFrame(hello, { name: "pty", send: (f) => sent.push(f) });
    await agent.check();
    await agent.idle();
    expect(agent.counters.storeErrors).toBe(1);
    expect(agent.counters).toMatchObject({ offers: 0, installs: 0, rejected: {} });
    expect(sent).toEqual([]);
    expect(warnings).toContain(
      "firmware update state cannot be read or written; tried again at the next check",
    );
    await agent.check();
    await agent.idle();
    expect(agent.counters.storeErrors).toBe(2);
  });
});

describe("firmware agent and device admission", () => {
  it("error: an unknown or revoked device is never offered a release: its HELLO is left to ingest (which NACKs it), and a device revoked after its HELLO is skipped at the next check; an unreachable release is tried again until then", async () => {
    const state = new MemoryFrameStore();
    await state.open();
    const admitted = new Set([1]);
    const agent = new FirmwareUpdateAgent({
      // The release's only URI refuses connections: an offer attempt shows as FETCH_FAILED.
      releases: { activeRelease: async () => release, getRelease: async () => release },
      state,
      dir: join(mkdtempSync(join(tmpdir(), "vigil-fw-")), "updates"),
      targetOf: () => "sim-mcu",
      admitted: (id) => admitted.has(id),
      fetchRetryMs: 0, // no download backoff: every attempt shows (firmware-agent-fetch.test.ts)
    });
    const link = { name: "pty", send: () => undefined };
    expect(agent.onFrame(hello, link)).toBe(false);
    expect(agent.onFrame({ ...hello, deviceId: 2 }, link)).toBe(false);
    expect(agent.devices().map((d) => d.id)).toEqual([1]);
    await agent.check();
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1 }); // device 1 only
    // Unreachable is not remembered: the next check and the device's next HELLO try again.
    expect(await state.metaEntries("updates/fw/failed/")).toEqual([]);
    await agent.check();
    await agent.idle();
    expect(agent.onFrame(hello, link)).toBe(false);
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 3 });
    // Device 1 is revoked: no longer offered, at a check or at its HELLO.
    admitted.delete(1);
    await agent.check();
    expect(agent.onFrame(hello, link)).toBe(false);
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 3 });
    await state.close();
  });
});

describe("firmware agent and revocation", () => {
  it("error: a release revoked after the last check is never offered (the chain is asked before each transfer); an unreadable chain offers nothing and remembers nothing", async () => {
    const state = new MemoryFrameStore();
    await state.open();
    let onChain: ReleaseRecord = { ...release };
    let down = false;
    const chainDown = (): never => {
      throw new Error("connect ECONNREFUSED 127.0.0.1:8545");
    };
    const agent = new FirmwareUpdateAgent({
      releases: {
        activeRelease: async () => (down ? chainDown() : onChain.status === "active" ? onChain : null),
        getRelease: async () => (down ? chainDown() : onChain),
      },
      state,
      dir: join(mkdtempSync(join(tmpdir(), "vigil-fw-")), "updates"),
      targetOf: () => "sim-mcu",
      fetchRetryMs: 0, // no download backoff: the HELLO after the failed fetch asks the chain
    });
    const link = { name: "pty", send: () => undefined };
    agent.onFrame({ ...hello, deviceId: 9 }, link); // seen before the first check: nothing cached
    await agent.check(); // caches release 7 as Active (its URI is unreachable: FETCH_FAILED, not remembered)
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1 });
    // revoked on chain; the next HELLO comes before any check
    onChain = { ...release, status: "revoked" };
    agent.onFrame(hello, link);
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1, REVOKED: 1 });
    // the chain unreachable at the next check: the cache is dropped, a HELLO offers nothing
    onChain = { ...release };
    down = true;
    await agent.check();
    agent.onFrame({ ...hello, deviceId: 3 }, link);
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1, REVOKED: 1 });
    expect((await state.metaEntries("updates/fw/failed/")).map(([k]) => k)).toEqual([
      "updates/fw/failed/1/7",
    ]);
    await state.close();
  });
});

describe("firmware agent and a device that goes quiet", () => {
  it("behavior: a transfer whose device stops answering is interrupted, not failed; checks leave it alone and its next HELLO resumes it where the device is, to the install", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fw-"));
    const body = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
    const img = buildFirmwareImage({ version: { major: 1, minor: 1, patch: 0 }, securityCounter: 2, body });
    writeFileSync(join(dir, "fw.vgfw"), img);
    const rel = {
      ...release,
      uris: [pathToFileURL(join(dir, "fw.vgfw")).href],
      size: BigInt(img.length),
      contentHash: `0x${createHash("sha256").update(img).digest("hex")}`,
    } as ReleaseRecord;
    const state = new MemoryFrameStore();
    await state.open();
    const agent = new FirmwareUpdateAgent({
      releases: { activeRelease: async () => rel, getRelease: async () => rel },
      state,
      dir: join(dir, "updates"),
      targetOf: () => "sim-mcu",
      session: { ackTimeoutMs: 200, maxRewinds: 2, offerTimeoutMs: 200, maxOffers: 3 },
    });
    // The device on an in-memory line whose cable can be pulled (both directions then drop).
    const fw = factoryFirmware({ deviceId: 1 });
    let pulled = false;
    const chunkOffsets: number[] = [];
    const toGateway = (f: Frame): void => {
      if (!pulled) setTimeout(() => agent.onFrame(decodeFrame(encodeFrame(f)), line), 1);
    };
    const line = {
      name: "mem",
      send: (f: Frame): void => {
        if (pulled) return;
        const frame = decodeFrame(encodeFrame(f));
        if (frame.type === FrameType.FwChunk) chunkOffsets.push(frame.offset);
        setTimeout(() => {
          const r = fw.handle(frame);
          if (r.reply) toGateway(r.reply);
          if (r.reboot)
            setTimeout(() => {
              fw.boot();
              fw.confirm();
              toGateway(fw.status());
            }, 5);
        }, 1);
      },
    };
    agent.onFrame(hello, line);
    await agent.check();
    // Pull the cable once the device has written part of the image.
    await vi.waitFor(() => expect(fw.status().nextOffset).toBeGreaterThan(4000), { interval: 5 });
    pulled = true;
    const written = fw.status().nextOffset;
    await agent.idle();
    expect(agent.counters).toMatchObject({ interrupted: 1, rejected: {}, installs: 0, offers: 1 });
    // (progress is saved without waiting for the disk)
    await vi.waitFor(async () => expect((await agent.progress.load(1, 7))?.phase).toBe("interrupted"));
    // A check does not offer it again: the device is gone until it says HELLO.
    await agent.check();
    await agent.idle();
    expect(agent.counters.offers).toBe(1);
    // Back: its HELLO resumes the transfer from where the device is, and it installs.
    pulled = false;
    chunkOffsets.length = 0;
    agent.onFrame(hello, line);
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 2, installs: 1, interrupted: 1, rejected: {} });
    expect(Math.min(...chunkOffsets)).toBeGreaterThanOrEqual(written); // nothing it wrote is resent
    expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
    await state.close();
  });
});
