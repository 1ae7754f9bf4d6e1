/**
 * The firmware agent's downloads against a real IPFS HTTP gateway on 127.0.0.1:
 * - stop() aborts a download under way at once, removes its partial file and records no refusal;
 * - a release whose download failed (the content host down) backs off, one backoff for every
 *   device: HELLOs and checks within it start no download (a sensor in a boot loop does not
 *   hammer the host), and after it the release is fetched again and installs;
 * - wrong bytes from the source (a truncated body, other bytes) are the source's fault at first:
 *   they extend that backoff and are remembered for a device only after `mismatchAttempts`
 *   downloads in a row (default 8) got wrong bytes; a download of the verified bytes ends the count.
 * The devices are the simulator's firmware on in-memory lines; the chain is a fake ReleaseSource.
 */
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FrameType, type FirmwareVersion, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { retryBackoffMs } from "../../gateway/src/updates/backoff.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { ipfsFirmwareRelease } from "./fw-release.ts";
import { line } from "./fw-line.ts";
import { within } from "./within.ts";

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

/** The gateway's answers: 503, a body that stalls, the image, the image 100 bytes short, other bytes. */
type Mode = "down" | "trickle" | "up" | "short" | "other";

/** An IPFS HTTP gateway on 127.0.0.1 whose answers `mode` decides; counts the GETs. */
async function gateway(): Promise<{ url: string; gets: () => number; mode: { now: Mode } }> {
  let gets = 0;
  const mode = { now: "down" as Mode };
  const server: Server = createServer((_req, res: ServerResponse) => {
    gets++;
    if (mode.now === "down") res.writeHead(503).end();
    else if (mode.now === "up") res.end(image);
    else if (mode.now === "short") res.end(image.subarray(0, image.length - 100));
    else if (mode.now === "other") res.end(image.map((b) => b ^ 1));
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

/** Devices 1 and 2 on their own lines, and a HELLO from both (then the agent's work settled). */
function twoDevices(agent: FirmwareUpdateAgent) {
  const lines = [1, 2].map((id) => line(agent, factoryFirmware({ deviceId: id })));
  const helloAll = async (): Promise<void> => {
    for (const [i, l] of lines.entries()) agent.onFrame(hello(i + 1), l);
    await agent.idle();
  };
  return { lines, helloAll };
}

async function rig(gwUrl: string, clock = new FakeClock(), mismatchAttempts?: number) {
  const rel = await ipfsFirmwareRelease(image);
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
    ...(mismatchAttempts === undefined ? {} : { mismatchAttempts }),
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
    const { lines, helloAll } = twoDevices(agent);
    await helloAll();
    await agent.check();
    await agent.idle();
    const first = gw.gets();
    expect(first).toBe(1); // both devices at once: one shared download, one backoff
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

  /** The device's remembered failure of release 7 ("" when none). */
  const failed = async (state: MemoryFrameStore, id = 1): Promise<string> =>
    (await state.getMeta(`updates/fw/failed/${id}/7`))?.toString("utf8") ?? "";

  it("behavior: a truncated download is the source's fault: not remembered, it backs off for every device, and after the backoff the release installs", async () => {
    const gw = await gateway();
    gw.mode.now = "short";
    const { agent, state, clock } = await rig(gw.url);
    const { helloAll } = twoDevices(agent);
    await helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1); // one download shared by both devices
    expect(agent.counters.rejected).toEqual({ SIZE_MISMATCH: 2 });
    for (const id of [1, 2]) {
      expect(await failed(state, id)).toBe("");
      expect(agent.devices()[id - 1]?.lastFailure?.reason).toMatch(
        /^no URI delivered the release's bytes \(got \d+ bytes, .*\) \(wrong bytes from its sources, attempt 1 of 8; not fetched again before 2025-11-24T16:01:00\.000Z\)$/,
      );
    }
    // The source is right again, but within the backoff HELLOs and a check fetch nothing.
    gw.mode.now = "up";
    clock.advanceMs(59_999);
    await helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    clock.advanceMs(1);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(2);
    expect(agent.counters).toMatchObject({ installs: 2, installsByDevice: { 1: 1, 2: 1 } });
    expect(agent.devices().map((d) => d.firmware)).toEqual(["1.1.0", "1.1.0"]);
  });

  it("behavior: wrong bytes at every download are remembered on the device only at the 8th in a row, the backoff doubling between them; retry() starts the count again", async () => {
    const gw = await gateway();
    gw.mode.now = "other";
    const { agent, state, clock } = await rig(gw.url);
    const l = line(agent, factoryFirmware({ deviceId: 1 }));
    agent.onFrame(hello(1), l);
    const reason = (): string | undefined => agent.devices()[0]?.lastFailure?.reason;
    for (let i = 1; i <= 8; i++) {
      await agent.check();
      await agent.idle();
      expect(gw.gets()).toBe(i);
      expect(agent.counters.rejected).toEqual({ HASH_MISMATCH: i });
      if (i === 8) break;
      expect(reason()).toContain(
        `(wrong bytes from its sources, attempt ${i} of 8; not fetched again before `,
      );
      expect(await failed(state)).toBe("");
      // Within the backoff (1 minute, doubled after each): a HELLO and a check fetch nothing.
      clock.advanceMs(retryBackoffMs(60_000, i) - 1);
      agent.onFrame(hello(1), l);
      await agent.check();
      await agent.idle();
      expect(gw.gets()).toBe(i);
      clock.advanceMs(1);
    }
    expect(reason()).toMatch(/\(wrong bytes from its sources, attempt 8 of 8: remembered as failed\)$/);
    expect(await failed(state)).toMatch(
      /^HASH_MISMATCH: no URI delivered .*attempt 8 of 8: remembered as failed\)$/,
    );
    // Remembered: never fetched again, however long after.
    clock.advanceMs(24 * 3_600_000);
    agent.onFrame(hello(1), l);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(8);
    expect(l.sent).toEqual([]);
    // The operator's retry forgets it: fetched again at once, counted from 1.
    expect(await agent.retry(1, 7n)).toBe(true);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(9);
    expect(reason()).toContain("(wrong bytes from its sources, attempt 1 of 8; ");
    expect(await failed(state)).toBe("");
  });

  it("behavior: a download that gets the verified bytes starts the device's count again (mismatchAttempts 2)", async () => {
    const gw = await gateway();
    gw.mode.now = "short";
    const { agent, state, clock } = await rig(gw.url, new FakeClock(), 2);
    const l = line(agent, factoryFirmware({ deviceId: 1 }));
    agent.onFrame(hello(1), l);
    const round = async (): Promise<string | undefined> => {
      await agent.check();
      await agent.idle();
      return agent.devices()[0]?.lastFailure?.reason;
    };
    expect(await round()).toContain("(wrong bytes from its sources, attempt 1 of 2; not fetched again");
    // The verified bytes, but the device holds another release (REFUSED/BUSY: not remembered).
    clock.advanceMs(60_000);
    gw.mode.now = "up";
    l.busy = true;
    await round();
    expect(agent.counters.rejected).toEqual({ SIZE_MISMATCH: 1, FW_REFUSED: 1 });
    // Wrong bytes again: attempt 1, not 2 (and no backoff left from before the good download).
    gw.mode.now = "short";
    l.busy = false;
    expect(await round()).toContain("(wrong bytes from its sources, attempt 1 of 2; not fetched again");
    expect(await failed(state)).toBe("");
    clock.advanceMs(60_000);
    expect(await round()).toMatch(/attempt 2 of 2: remembered as failed\)$/);
    expect(await failed(state)).toMatch(/^SIZE_MISMATCH: /);
    expect(gw.gets()).toBe(4);
  });
});
