/**
 * The firmware agent's release rules at their edges: version numbers that would collide when packed
 * (`major·10^6 + minor·10^3 + patch`), a device that answers REFUSED/BUSY (transient), the
 * security counter (never backwards), and the staging folder (nothing left behind). The device is
 * the simulator's firmware on an in-memory line; releases are records pointing at file:// images.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FrameType, type FirmwareVersion, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { UpdateError } from "../../gateway/src/updates/errors.ts";
import {
  firmwareVersionNumber,
  firmwareVersionOf,
  FirmwareUpdateAgent,
  type FirmwareAgentOptions,
} from "../../gateway/src/updates/firmware-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";
import { line } from "./fw-line.ts";

const hello = (deviceId: number, firmware: FirmwareVersion): HelloFrame => ({
  type: FrameType.Hello,
  deviceId,
  bootId: 1,
  firmware,
  profile: "sim-mcu",
  channels: [],
});

/** A firmware release record whose file:// URI serves `image`. */
function releaseOf(
  dir: string,
  image: Buffer,
  o: { id?: bigint; version: bigint; metrics?: string },
): ReleaseRecord {
  const sha = createHash("sha256").update(image).digest("hex");
  const file = join(dir, `${sha}.vgfw`);
  writeFileSync(file, image);
  return {
    id: o.id ?? 7n,
    kind: "firmware",
    target: targetId("firmware", "sim-mcu"),
    status: "active",
    version: o.version,
    uris: [pathToFileURL(file).href],
    size: BigInt(image.length),
    contentHash: `0x${sha}`,
    metrics: o.metrics ?? "",
    approvals: 2,
    proposer: `0x${"11".repeat(20)}`,
  } as ReleaseRecord;
}

const body = new Uint8Array(6_000).map((_, i) => (i * 7) & 0xff);
const image = (version: FirmwareVersion, securityCounter = 2): Buffer =>
  buildFirmwareImage({ version, securityCounter, body });

async function rig(
  rel: () => ReleaseRecord | null,
  o: Partial<FirmwareAgentOptions> & { state?: MemoryFrameStore } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), "vigil-fw-"));
  const state = o.state ?? new MemoryFrameStore();
  if (!o.state) await state.open();
  const agent = new FirmwareUpdateAgent({
    releases: { activeRelease: async () => rel(), getRelease: async () => rel() },
    state,
    dir: join(dir, "updates"),
    targetOf: () => "sim-mcu",
    session: { offerTimeoutMs: 100, maxOffers: 2, ackTimeoutMs: 200, maxRewinds: 2 },
    ...o,
  });
  return { dir, state, agent };
}

/** Every file name under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]) : [];
}

describe("firmware version numbers", () => {
  it("error: a part above 999 has no release version of its own (1.0.1000 would be 1.1.0's): a typed MANIFEST_INVALID", () => {
    expect(firmwareVersionNumber({ major: 1, minor: 1, patch: 0 })).toBe(1_001_000n);
    expect(firmwareVersionNumber({ major: 255, minor: 255, patch: 999 })).toBe(255_255_999n);
    expect(() => firmwareVersionNumber({ major: 1, minor: 0, patch: 1000 })).toThrowError(UpdateError);
    expect(() => firmwareVersionNumber({ major: 1, minor: 0, patch: 1000 })).toThrowError(
      expect.objectContaining({
        code: "MANIFEST_INVALID",
        shortMessage:
          "firmware version 1.0.1000 has a patch above 999, which a release version (major·10^6 + minor·10^3 + patch) cannot hold",
      }),
    );
    expect(firmwareVersionOf(1_001_000n)).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(firmwareVersionOf(255_255_999n)).toEqual({ major: 255, minor: 255, patch: 999 });
    // No version a device can run (its major and minor are bytes).
    expect(firmwareVersionOf(256_000_000n)).toBeUndefined();
    expect(firmwareVersionOf(1_300_000n)).toBeUndefined();
  });

  it("error: an image whose patch is above 999 is refused before any offer (MANIFEST_INVALID, remembered), though it packs to the release's version", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    // 1.0.1000 packs to 1 001 000, release 1.1.0's number.
    const rel = releaseOf(tmp, image({ major: 1, minor: 0, patch: 1000 }), { version: 1_001_000n });
    const { agent, state, dir } = await rig(() => rel);
    const fw = factoryFirmware({ deviceId: 1 });
    const l = line(agent, fw);
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 0, rejected: { MANIFEST_INVALID: 1 } });
    expect(l.sent).toEqual([]);
    expect((await state.getMeta("updates/fw/failed/1/7"))?.toString()).toMatch(/^MANIFEST_INVALID: /);
    expect(filesUnder(join(dir, "updates")).filter((f) => f.includes(rel.contentHash.slice(2)))).toEqual([]);
    await state.close();
  });

  it("behavior: a device that runs 1.0.1500 is offered release 1.1.0 and installs it (versions compare as (major, minor, patch), not as packed numbers); one that runs 1.1.0 is not", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }), { version: 1_001_000n });
    const { agent, state } = await rig(() => rel);
    const fw = factoryFirmware({ deviceId: 1, version: { major: 1, minor: 0, patch: 1500 } });
    const l1 = line(agent, fw);
    const l2 = line(agent, factoryFirmware({ deviceId: 2, version: { major: 1, minor: 1, patch: 0 } }));
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 1500 }), l1);
    agent.onFrame(hello(2, { major: 1, minor: 1, patch: 0 }), l2);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({
      offers: 1,
      installs: 1,
      installsByDevice: { 1: 1 },
      rejected: {},
    });
    expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(l2.sent).toEqual([]);
    await state.close();
  });
});

describe("firmware agent and a busy device", () => {
  it("behavior: REFUSED/BUSY (the device holds another release) is not remembered: the next check offers again, and the release installs once the device is free", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }), { version: 1_001_000n });
    const { agent, state, dir } = await rig(() => rel);
    const fw = factoryFirmware({ deviceId: 1 });
    const l = line(agent, fw);
    l.busy = true;
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 1, installs: 0, rejected: { FW_REFUSED: 1 } });
    expect(await state.getMeta("updates/fw/failed/1/7")).toBeUndefined();
    expect(agent.devices()[0]?.lastFailure).toMatchObject({ releaseId: "7", code: "FW_REFUSED" });
    expect(agent.devices()[0]?.lastFailure?.reason).toMatch(/: BUSY$/);
    // Still busy at the next check: offered again, still not remembered.
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 2, installs: 0, rejected: { FW_REFUSED: 2 } });
    // Free again: the next check installs it.
    l.busy = false;
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 3, installs: 1, rejected: { FW_REFUSED: 2 } });
    expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(await state.metaEntries("updates/fw/failed/")).toEqual([]);
    // Nothing staged is left behind.
    expect(filesUnder(join(dir, "updates")).filter((f) => f.includes(rel.contentHash.slice(2)))).toEqual([]);
    await state.close();
  });
});

describe("firmware agent after an install", () => {
  it("error: an install record that cannot be written (a full disk) is a store error, not a refusal: the release is not remembered as failed and its install is still reported", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }), { version: 1_001_000n });
    const state = new MemoryFrameStore();
    await state.open();
    const put = state.putMeta.bind(state);
    state.putMeta = (key, value) =>
      key === "updates/fw/installed/1"
        ? Promise.reject(new Error("ENOSPC: no space left on device"))
        : put(key, value);
    const reported: bigint[] = [];
    const { agent } = await rig(() => rel, {
      state,
      reporter: { report: async (id) => void reported.push(id) },
    });
    const fw = factoryFirmware({ deviceId: 1 });
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), line(agent, fw));
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ installs: 1, storeErrors: 1, rejected: {} });
    expect(await state.getMeta("updates/fw/failed/1/7")).toBeUndefined();
    expect(agent.devices()[0]?.lastFailure).toBeUndefined();
    expect(reported).toEqual([7n]);
    await state.close();
  });
});

describe("firmware agent and the security counter", () => {
  it("error: an image whose security counter is below the device's (its FW_STATUS) is refused before any byte is sent (NOT_NEWER, remembered)", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }, 2), { version: 1_001_000n });
    const { agent, state } = await rig(() => rel);
    const fw = factoryFirmware({ deviceId: 1, securityCounter: 5 });
    const l = line(agent, fw);
    // A device sends FW_STATUS after every HELLO; the agent has not seen a release yet.
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    expect(agent.onFrame(fw.status(), l)).toBe(true);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 0, rejected: { NOT_NEWER: 1 } });
    expect(l.sent).toEqual([]);
    expect((await state.getMeta("updates/fw/failed/1/7"))?.toString()).toBe(
      "NOT_NEWER: the image's security counter 2 is below device 00000001's 5 (rollback refused)",
    );
    await state.close();
  });

  it("error: after a restart, before the device's FW_STATUS, the counter of the release this gateway installed there is the floor", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const first = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }, 3), { version: 1_001_000n });
    const state = new MemoryFrameStore();
    await state.open();
    const fw = factoryFirmware({ deviceId: 1 });
    {
      const { agent } = await rig(() => first, { state });
      agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), line(agent, fw));
      await agent.check();
      await agent.idle();
      expect(agent.counters).toMatchObject({ installs: 1, rejected: {} });
    }
    // A newer version with a lower counter; a restarted gateway hears the HELLO only.
    const second = releaseOf(tmp, image({ major: 1, minor: 2, patch: 0 }, 2), {
      id: 8n,
      version: 1_002_000n,
    });
    const { agent } = await rig(() => second, { state });
    const l = line(agent, fw);
    agent.onFrame(hello(1, { major: 1, minor: 1, patch: 0 }), l);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 0, rejected: { NOT_NEWER: 1 } });
    expect(l.sent).toEqual([]);
    await state.close();
  });

  it("error: an image whose counter is not the one the release declares (metrics securityCounter) is refused (MANIFEST_MISMATCH)", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }, 2), {
      version: 1_001_000n,
      metrics: JSON.stringify({ securityCounter: 9 }),
    });
    const { agent, state } = await rig(() => rel);
    const l = line(agent, factoryFirmware({ deviceId: 1 }));
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 0, rejected: { MANIFEST_MISMATCH: 1 } });
    expect((await state.getMeta("updates/fw/failed/1/7"))?.toString()).toBe(
      "MANIFEST_MISMATCH: the image's security counter is 2, the release declares 9",
    );
    await state.close();
  });
});

describe("firmware agent: FW_STATUS of devices it does not serve", () => {
  it("attack: FW_STATUS with invented ids on a serial line leaves nothing held (only an admitted device's counter and slot are), and a device whose HELLO is no longer admitted is forgotten", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }, 2), { version: 1_001_000n });
    const admitted = new Set([1]);
    const { agent, state } = await rig(() => rel, { admitted: (id) => admitted.has(id) });
    const fw = factoryFirmware({ deviceId: 1, securityCounter: 5 });
    const l = line(agent, fw);
    // Ids with no HELLO, and one whose HELLO admission refuses: stray replies, nothing held.
    for (let id = 0x2000_0000; id < 0x2000_0000 + 1000; id++)
      expect(agent.onFrame({ ...fw.status(), deviceId: id }, l)).toBe(true);
    expect(agent.onFrame(hello(2, { major: 1, minor: 0, patch: 0 }), l)).toBe(false);
    expect(agent.onFrame({ ...fw.status(), deviceId: 2 }, l)).toBe(true);
    expect(agent.counters.strayReplies).toBe(1001);
    expect(agent.statusesHeld).toBe(0);
    // The admitted device's FW_STATUS after its HELLO is held: its counter still refuses an older image.
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    agent.onFrame(fw.status(), l);
    expect(agent.statusesHeld).toBe(1);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ offers: 0, rejected: { NOT_NEWER: 1 } });
    // Revoked: its next HELLO is not admitted, and what its FW_STATUS said is forgotten.
    admitted.delete(1);
    expect(agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l)).toBe(false);
    agent.onFrame(fw.status(), l);
    expect(agent.statusesHeld).toBe(0);
    expect(agent.devices()).toEqual([]);
    await state.close();
  });
});

describe("firmware agent and the chain view's age", () => {
  it("attack: freeze with one RPC endpoint — a view whose newest block is older than staleAfterMs offers nothing (STALE_CHAIN_VIEW, a check error); a fresh one offers", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }), { version: 1_001_000n });
    const clock = new FakeClock();
    let headS = BigInt(Math.floor(clock.nowMs() / 1000) - 3601); // the endpoint froze an hour ago
    const { agent, state } = await rig(() => rel, {
      releases: {
        activeRelease: async () => rel,
        getRelease: async () => rel,
        chainTimeS: async () => headS,
      },
      clock,
    });
    const fw = factoryFirmware({ deviceId: 1 });
    const l = line(agent, fw);
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ checks: 1, checkErrors: 1, offers: 0 });
    expect(l.sent).toEqual([]);
    agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l); // a HELLO offers nothing either
    await agent.idle();
    expect(l.sent).toEqual([]);
    headS = BigInt(Math.floor(clock.nowMs() / 1000) - 2); // caught up (blocks every 2 s)
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ checks: 2, checkErrors: 1, offers: 1, installs: 1 });
    expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
    await state.close();
  });
});

describe("firmware agent staging", () => {
  it("behavior: at start, what earlier runs left is removed (a killed download's .part, images of finished transfers, firmware images staged in updates/staging by earlier versions); model files there stay", async () => {
    const { agent, state, dir } = await rig(() => null);
    const updates = join(dir, "updates");
    const fwSha = "ab".repeat(32);
    const modelSha = "cd".repeat(32);
    mkdirSync(join(updates, "firmware-staging"), { recursive: true });
    mkdirSync(join(updates, "staging"), { recursive: true });
    writeFileSync(join(updates, "firmware-staging", `${fwSha}.3.part`), "partial");
    writeFileSync(join(updates, "firmware-staging", "ef".repeat(32)), "old image");
    writeFileSync(join(updates, "staging", fwSha), "image staged by an earlier version");
    writeFileSync(join(updates, "staging", `${fwSha}.2.part`), "its partial download");
    writeFileSync(join(updates, "staging", modelSha), "a model being fetched");
    // What the store knows of an earlier transfer of that image.
    await agent.progress.save({
      deviceId: 1,
      releaseId: 7,
      sha256: fwSha,
      imageSize: 10,
      phase: "done",
      ackedOffset: 10,
      updatedMs: 0,
    });
    agent.start("0 0 1 1 *");
    try {
      expect(readdirSync(join(updates, "firmware-staging"))).toEqual([]);
      await vi.waitFor(() => expect(readdirSync(join(updates, "staging"))).toEqual([modelSha]));
    } finally {
      await agent.stop();
    }
    await state.close();
  });
});

describe("firmware agent: a HELLO of a target the last check did not read", () => {
  it("behavior: started, the first device of a target is offered its release at once (a check of its own), not at the next scheduled check", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "vigil-fw-img-"));
    const rel = releaseOf(tmp, image({ major: 1, minor: 1, patch: 0 }), { version: 1_001_000n });
    let reads = 0;
    const { agent, state } = await rig(() => rel, {
      releases: {
        activeRelease: async () => (reads++, rel),
        getRelease: async () => rel,
      },
    });
    agent.start("0 0 1 1 *"); // its check at once reads nothing (no device yet); none scheduled after
    try {
      await vi.waitFor(() => expect(agent.counters.checks).toBe(1));
      expect(reads).toBe(0);
      const fw = factoryFirmware({ deviceId: 1, version: { major: 1, minor: 0, patch: 0 } });
      const l = line(agent, fw);
      agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
      // A second device of the same target during that check: one more check at most, not one each.
      const l2 = line(agent, factoryFirmware({ deviceId: 2, version: { major: 1, minor: 1, patch: 0 } }));
      agent.onFrame(hello(2, { major: 1, minor: 1, patch: 0 }), l2);
      await vi.waitFor(() => expect(agent.counters.installs).toBe(1), { timeout: 10_000 });
      await agent.idle();
      expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
      expect(agent.counters.checks).toBeLessThanOrEqual(3);
      // The target is read now: its HELLOs (device 1 again after its reboot) ask for no check.
      const checks = agent.counters.checks;
      agent.onFrame(hello(1, { major: 1, minor: 1, patch: 0 }), l);
      agent.onFrame(hello(2, { major: 1, minor: 1, patch: 0 }), l2);
      await new Promise((r) => setImmediate(r));
      expect(agent.counters.checks).toBe(checks);
      expect(l2.sent).toEqual([]);
    } finally {
      await agent.stop();
    }
    await state.close();
  });

  it("behavior: after a failed check, HELLOs ask for no check (the schedule's next one decides): a device rebooting in a loop cannot make one failed chain read per HELLO", async () => {
    let reads = 0;
    let fail = false;
    const { agent, state } = await rig(() => null, {
      releases: {
        activeRelease: async () => {
          reads++;
          if (fail) throw new Error("chain unreachable");
          return null;
        },
        getRelease: async () => null,
      },
      targetOf: (h) => `board-${h.deviceId}`,
    });
    agent.start("0 0 1 1 *");
    try {
      await vi.waitFor(() => expect(agent.counters.checks).toBe(1));
      const l = line(agent, factoryFirmware({ deviceId: 1 }));
      fail = true;
      agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
      await vi.waitFor(() => expect(agent.counters.checkErrors).toBe(1));
      expect(reads).toBe(1);
      for (let i = 0; i < 5; i++) agent.onFrame(hello(1, { major: 1, minor: 0, patch: 0 }), l);
      agent.onFrame(
        hello(2, { major: 1, minor: 0, patch: 0 }),
        line(agent, factoryFirmware({ deviceId: 2 })),
      );
      await new Promise((r) => setImmediate(r));
      expect(agent.counters.checks).toBe(2);
      expect(reads).toBe(1);
      // A check that succeeds (here: asked for, as the schedule would) turns them back on.
      fail = false;
      await agent.check();
      expect(reads).toBe(3); // board-1 and board-2
      agent.onFrame(
        hello(3, { major: 1, minor: 0, patch: 0 }),
        line(agent, factoryFirmware({ deviceId: 3 })),
      );
      await vi.waitFor(() => expect(reads).toBe(6));
    } finally {
      await agent.stop();
    }
    await state.close();
  });
});
