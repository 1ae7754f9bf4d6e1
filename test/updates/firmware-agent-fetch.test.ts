/**
 * The firmware agent's downloads against a real IPFS HTTP gateway on 127.0.0.1:
 * - stop() aborts a download under way at once, removes its partial file and records no refusal;
 * - a release whose download failed (the content host down) backs off, one backoff for every
 *   device: HELLOs and checks within it start no download (a sensor in a boot loop does not
 *   hammer the host), and after it the release is fetched again and installs.
 * The devices are the simulator's firmware on in-memory lines; the chain is a fake ReleaseSource.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FrameType, type FirmwareVersion, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { cidV1 } from "../../gateway/src/updates/cid.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";
import { line } from "./fw-line.ts";

const V1: FirmwareVersion = { major: 1, minor: 0, patch: 0 };
const hello = (deviceId: number): HelloFrame => ({
  type: FrameType.Hello,
  deviceId,
  bootId: 1,
  firmware: V1,
  profile: "sim-mcu",
  channels: [],
});

const image = buildFirmwareImage({
  version: { major: 1, minor: 1, patch: 0 },
  securityCounter: 2,
  body: new Uint8Array(6_000).map((_, i) => (i * 7) & 0xff),
});

const closing: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closing.splice(0)) await c();
});

/** An IPFS HTTP gateway on 127.0.0.1 whose answers `mode` decides; counts the GETs. */
async function gateway(): Promise<{
  url: string;
  gets: () => number;
  mode: { now: "down" | "trickle" | "up" };
}> {
  let gets = 0;
  const mode = { now: "down" as "down" | "trickle" | "up" };
  const server: Server = createServer((_req, res: ServerResponse) => {
    gets++;
    if (mode.now === "down") res.writeHead(503).end();
    else if (mode.now === "up") res.end(image);
    else {
      res.writeHead(200, { "content-length": String(image.length) });
      res.write(image.subarray(0, 1000));
    }
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  closing.push(async () => {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gets: () => gets, mode };
}

async function rig(gwUrl: string, clock = new FakeClock()) {
  const sha = createHash("sha256").update(image).digest("hex");
  const rel = {
    id: 7n,
    kind: "firmware",
    target: targetId("firmware", "sim-mcu"),
    status: "active",
    version: 1_001_000n,
    uris: [`ipfs://${await cidV1(image)}`],
    size: BigInt(image.length),
    contentHash: `0x${sha}`,
    metrics: "",
    approvals: 2,
    proposer: `0x${"11".repeat(20)}`,
  } as ReleaseRecord;
  const state = new MemoryFrameStore();
  await state.open();
  const dir = join(mkdtempSync(join(tmpdir(), "vigil-fw-fetch-")), "updates");
  const agent = new FirmwareUpdateAgent({
    releases: { activeRelease: async () => rel, getRelease: async () => rel },
    state,
    dir,
    ipfsGateway: gwUrl,
    fetchTimeoutMs: 20_000,
    clock,
    targetOf: () => "sim-mcu",
    session: { offerTimeoutMs: 100, maxOffers: 2, ackTimeoutMs: 200, maxRewinds: 2 },
  });
  closing.unshift(async () => {
    await agent.stop();
    await state.close();
  });
  const staging = join(dir, "firmware-staging");
  const parts = (): string[] =>
    existsSync(staging) ? readdirSync(staging).filter((f) => f.endsWith(".part")) : [];
  return { agent, state, clock, parts };
}

/** How `p` ends within `ms` (a bound on the outcome, not a synchronisation). */
async function within(p: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((res) => (timer = setTimeout(() => res("still running"), ms)));
  try {
    return await Promise.race([Promise.resolve(p).then(() => "resolved"), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("firmware agent: downloads", () => {
  it("behavior: stop() aborts a download under way at once, removes its .part and records no refusal", async () => {
    const gw = await gateway();
    gw.mode.now = "trickle";
    const { agent, state, parts } = await rig(gw.url);
    const l = line(agent, factoryFirmware({ deviceId: 1 }));
    agent.onFrame(hello(1), l);
    await agent.check();
    await expect.poll(() => parts().length).toBe(1);
    expect(await within(agent.stop(), 3000)).toBe("resolved");
    expect(parts()).toEqual([]);
    await agent.idle();
    expect(agent.counters.rejected).toEqual({});
    expect(agent.devices()[0]?.lastFailure).toBeUndefined();
    expect((await state.getMeta("updates/fw/failed/1/7"))?.length ?? 0).toBe(0);
    expect(l.sent).toEqual([]);
  });

  it("behavior: a failed download backs off for every device: HELLOs and checks within the backoff fetch nothing; after it the release is fetched again and installs", async () => {
    const gw = await gateway();
    const { agent, clock } = await rig(gw.url);
    const lines = [1, 2].map((id) => line(agent, factoryFirmware({ deviceId: id })));
    const helloAll = async (): Promise<void> => {
      for (const [i, l] of lines.entries()) agent.onFrame(hello(i + 1), l);
      await agent.idle();
    };
    await helloAll();
    await agent.check();
    await agent.idle();
    const first = gw.gets();
    expect(first).toBe(2); // both devices at once: one round, one backoff
    // A boot loop: HELLO after HELLO, and a check, within the first minute: no new download.
    for (let i = 0; i < 10; i++) await helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(first);
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 2 });
    expect(agent.devices()[0]?.lastFailure).toMatchObject({ code: "FETCH_FAILED" });
    expect(agent.devices()[0]?.lastFailure?.reason).toMatch(
      /\(download attempt 1 in a row; not fetched again before \d{4}-\d\d-\d\dT/,
    );

    // After 1 minute: fetched again (and failed: the next wait is 2 minutes).
    clock.advanceMs(60_000);
    agent.onFrame(hello(1), lines[0]!);
    await agent.idle();
    expect(gw.gets()).toBe(first + 1);
    await helloAll();
    clock.advanceMs(60_000);
    await helloAll();
    expect(gw.gets()).toBe(first + 1);

    // The host is back: after the backoff the release is fetched and installs on both devices.
    gw.mode.now = "up";
    clock.advanceMs(60_000);
    await agent.check();
    await agent.idle();
    expect(agent.counters).toMatchObject({ installs: 2, installsByDevice: { 1: 1, 2: 1 } });
  });
});
