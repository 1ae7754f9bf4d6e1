/**
 * The firmware agent when its store fails (a full disk, an I/O error): the update stops, counted
 * and logged, and the gateway goes on. Only devices that ingest admits are offered a release. The whole path against a device over a pty and releases on
 * anvil: test/interop/firmware-agent.test.ts.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { FrameType, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
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
  it("error: an unknown or revoked device is never offered a release: its HELLO is left to ingest (which NACKs it), and a device revoked after its HELLO is skipped at the next check", async () => {
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
    });
    const link = { name: "pty", send: () => undefined };
    expect(agent.onFrame(hello, link)).toBe(false);
    expect(agent.onFrame({ ...hello, deviceId: 2 }, link)).toBe(false);
    expect(agent.devices().map((d) => d.id)).toEqual([1]);
    await agent.check();
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1 }); // device 1 only
    // Device 1 is revoked; its failure is forgotten by an operator: still not offered.
    admitted.delete(1);
    expect(await agent.retry(1, release.id)).toBe(true);
    await agent.check();
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 1 });
    await state.close();
  });
});
