/**
 * The firmware agent when its store fails (a full disk, an I/O error): the update stops, counted
 * and logged, and the gateway goes on. The whole path against a device over a pty and releases on
 * anvil: test/interop/firmware-agent.test.ts.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { FrameType, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";

const release: ReleaseRecord = {
  id: 7n,
  kind: "firmware",
  target: targetId("firmware", "sim-mcu"),
  status: "active",
  version: 1_001_000n,
  uris: ["https://127.0.0.1:9/never-fetched.vgfw"],
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
