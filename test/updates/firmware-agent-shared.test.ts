/**
 * The firmware agent downloads a release once for all its devices (audit finding 5: 32 sensors
 * made 32 concurrent GETs of one 16 MB image, each held in memory, before any device said it did
 * not fit):
 * - devices that need a release at the same time share one download, and a device that needs it
 *   while another's transfer of it runs reuses it;
 * - a device whose last FW_STATUS reports a slot smaller than the release is refused without a
 *   download, as it would refuse the offer itself (FW_REFUSED, TOO_LARGE, remembered);
 * - a failed download fails every device that waited on it and extends the release's backoff
 *   once, not once per device;
 * - no staged image is left once the transfers are done, nor after stop(), and no transfer starts
 *   after stop().
 * Releases are served through an IPFS HTTP gateway on 127.0.0.1 that counts its GETs; the devices
 * are the simulator's firmware on in-memory lines; the chain is a fake ReleaseSource.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { silentLogger, type Logger } from "../../gateway/src/core/log.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FrameType, type Frame, type HelloFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import {
  FirmwareUpdateAgent,
  type FirmwareAgentOptions,
  type ListableStateStore,
} from "../../gateway/src/updates/firmware-agent.ts";
import { ipfsFirmwareRelease } from "./fw-release.ts";
import { line } from "./fw-line.ts";
import { within } from "./within.ts";

const hello = (deviceId: number): HelloFrame => ({
  type: FrameType.Hello,
  deviceId,
  bootId: 1,
  firmware: { major: 1, minor: 0, patch: 0 },
  profile: "sim-mcu",
  channels: [],
});

/** Release 1.1.0: 20 032 bytes, more than a 16 KiB slot holds, less than the default 128 KiB. */
const image = buildFirmwareImage({
  version: { major: 1, minor: 1, patch: 0 },
  securityCounter: 2,
  body: new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff),
});
const sha = createHash("sha256").update(image).digest("hex");

const closing: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closing.splice(0)) await c();
});

/** An IPFS HTTP gateway on 127.0.0.1 that serves the image (`up`), 503 (`down`) or other bytes; counts GETs. */
async function gateway(): Promise<{
  url: string;
  gets: () => number;
  mode: { now: "up" | "down" | "other" };
}> {
  let gets = 0;
  const mode = { now: "up" as "up" | "down" | "other" };
  const server: Server = createServer((_req, res) => {
    gets++;
    if (mode.now === "down") res.writeHead(503).end();
    else if (mode.now === "other") res.end(image.map((b) => b ^ 1));
    else res.end(image);
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  closing.push(async () => {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gets: () => gets, mode };
}

async function rig(gwUrl: string, o: Partial<FirmwareAgentOptions> = {}) {
  const rel = await ipfsFirmwareRelease(image);
  const mem = new MemoryFrameStore();
  await mem.open();
  const dir = join(mkdtempSync(join(tmpdir(), "vigil-fw-shared-")), "updates");
  const clock = new FakeClock();
  const agent = new FirmwareUpdateAgent({
    releases: { activeRelease: async () => rel, getRelease: async () => rel },
    state: mem,
    dir,
    ipfsGateway: gwUrl,
    fetchTimeoutMs: 20_000,
    clock,
    targetOf: () => "sim-mcu",
    session: { offerTimeoutMs: 2_000, maxOffers: 2, ackTimeoutMs: 500, maxRewinds: 2 },
    ...o,
  });
  closing.unshift(async () => {
    await agent.stop();
    await mem.close();
  });
  const staging = join(dir, "firmware-staging");
  const staged = (): string[] => (existsSync(staging) ? readdirSync(staging) : []);
  return { agent, mem, clock, staged };
}

/** Devices `ids` (default 128 KiB slots) on in-memory lines; `helloAll` sends their HELLOs. */
function devices(agent: FirmwareUpdateAgent, ids: number[], slotSize?: number) {
  const fws = ids.map((deviceId) =>
    factoryFirmware({ deviceId, ...(slotSize === undefined ? {} : { slotSize }) }),
  );
  const lines = fws.map((fw) => line(agent, fw));
  const helloAll = (): void => ids.forEach((id, i) => agent.onFrame(hello(id), lines[i]!));
  return { fws, lines, helloAll };
}

describe("firmware agent: one download per release", () => {
  it("behavior: 8 devices that need the release at once make one GET; all 8 install it, and nothing stays staged", async () => {
    const gw = await gateway();
    const { agent, staged } = await rig(gw.url);
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    const { fws, helloAll } = devices(agent, ids);
    helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    expect(agent.counters).toMatchObject({
      offers: 8,
      installs: 8,
      installsByDevice: Object.fromEntries(ids.map((id) => [id, 1])),
      rejected: {},
    });
    expect(fws.map((fw) => fw.status().firmware)).toEqual(ids.map(() => ({ major: 1, minor: 1, patch: 0 })));
    expect(staged()).toEqual([]);
  });

  it("behavior: a device that needs the release while another's transfer of it runs reuses that download (no second GET)", async () => {
    const gw = await gateway();
    // Offers 10 s apart: device 1's transfer outlasts device 2's however loaded the machine is.
    const session = { offerTimeoutMs: 10_000, maxOffers: 2, ackTimeoutMs: 500, maxRewinds: 2 };
    const { agent, staged } = await rig(gw.url, { session });
    // Device 1's line holds what the gateway sends until the test lets it through: its transfer
    // (and its hold on the image) lasts until then.
    const fw1 = factoryFirmware({ deviceId: 1 });
    const inner = line(agent, fw1);
    const held: Frame[] = [];
    let open = false;
    const link1 = { name: "held", send: (f: Frame): void => void (open ? inner.send(f) : held.push(f)) };
    agent.onFrame(hello(1), link1);
    await agent.check();
    await expect.poll(() => held.length).toBeGreaterThan(0); // offered: the image is downloaded
    expect(staged()).toEqual([sha]);
    const { fws, helloAll } = devices(agent, [2]);
    helloAll();
    await expect.poll(() => agent.counters.installsByDevice[2]).toBe(1);
    expect(gw.gets()).toBe(1);
    expect(staged()).toEqual([sha]); // still held by device 1's transfer
    open = true;
    for (const f of held.splice(0)) inner.send(f);
    await agent.idle();
    expect(agent.counters.installsByDevice).toEqual({ 1: 1, 2: 1 });
    expect([fw1, ...fws].map((fw) => fw.status().firmware.minor)).toEqual([1, 1]);
    expect(gw.gets()).toBe(1);
    expect(staged()).toEqual([]);
  });
});

describe("firmware agent: the device's slot size", () => {
  it("error: a device whose last FW_STATUS reports a slot smaller than the release is refused without a download (FW_REFUSED, TOO_LARGE, remembered), as it would refuse the offer", async () => {
    const gw = await gateway();
    const infos: string[] = [];
    const log = { ...silentLogger, info: (_o: unknown, m?: string) => void infos.push(m ?? "") };
    const { agent, mem, staged } = await rig(gw.url, { log: { ...log, child: () => log } as Logger });
    // Device 1 (16 KiB slot) sends its FW_STATUS after its HELLO, as a device that supports updates does.
    const small = devices(agent, [1], 16 * 1024);
    small.helloAll();
    agent.onFrame(small.fws[0]!.status(), small.lines[0]!);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(0);
    expect(small.lines[0]!.sent).toEqual([]);
    expect(agent.counters).toMatchObject({ offers: 0, installs: 0, rejected: { FW_REFUSED: 1 } });
    expect(agent.devices()[0]?.lastFailure).toMatchObject({ releaseId: "7", code: "FW_REFUSED" });
    expect(agent.devices()[0]?.lastFailure?.reason).toBe("device 00000001 refused release 7: TOO_LARGE");
    expect((await mem.getMeta("updates/fw/failed/1/7"))?.toString()).toBe(
      "FW_REFUSED: device 00000001 refused release 7: TOO_LARGE",
    );
    expect(infos).toContain(
      "firmware release 7 (20032 bytes) does not fit device 00000001's 16384-byte slot (its last FW_STATUS): not downloaded, not offered",
    );
    expect(staged()).toEqual([]);

    // No slot size known yet (device 2: no FW_STATUS since its HELLO): offered as before, and it
    // refuses itself, counted the same way; device 3's slot holds the image: it installs it.
    const unknown = devices(agent, [2], 16 * 1024);
    const big = devices(agent, [3]);
    unknown.helloAll();
    big.helloAll();
    agent.onFrame(big.fws[0]!.status(), big.lines[0]!);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    expect(agent.counters).toMatchObject({
      offers: 2,
      installsByDevice: { 3: 1 },
      rejected: { FW_REFUSED: 2 },
    });
    expect(agent.devices().find((d) => d.id === 2)?.lastFailure?.reason).toBe(
      "device 00000002 refused release 7: TOO_LARGE",
    );
    expect(small.lines[0]!.sent).toEqual([]); // remembered: not offered at the second check
    expect(staged()).toEqual([]);
  });
});

describe("firmware agent: the gateway's size limit", () => {
  it("input: a release above updates.maxFirmwareBytes is refused on every device before any download (TOO_LARGE, remembered), slot known or not", async () => {
    const gw = await gateway();
    const { agent, mem, staged } = await rig(gw.url, { maxFirmwareBytes: 20_000 }); // the image: 20 032 bytes
    const d = devices(agent, [1, 2]);
    d.helloAll();
    agent.onFrame(d.fws[0]!.status(), d.lines[0]!); // device 1's 128 KiB slot would hold it
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(0);
    expect(agent.counters).toMatchObject({ offers: 0, installs: 0, rejected: { TOO_LARGE: 2 } });
    const reason =
      "release 7's image is 20032 bytes, above updates.maxFirmwareBytes (20000); raise it if this gateway can hold the image, then run vigil update retry 7";
    expect(agent.devices().map((x) => x.lastFailure?.reason)).toEqual([reason, reason]);
    expect((await mem.getMeta("updates/fw/failed/2/7"))?.toString()).toBe(`TOO_LARGE: ${reason}`);
    expect(staged()).toEqual([]);
  });
});

describe("firmware agent: a failed shared download", () => {
  it("error: a download that fails (503) fails the 8 devices waiting on it, extends the release's backoff once, and no device fetches again within it", async () => {
    const gw = await gateway();
    gw.mode.now = "down";
    const { agent, clock, staged } = await rig(gw.url);
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    const { helloAll } = devices(agent, ids);
    helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 8 });
    const reasons = (): Array<string | undefined> => agent.devices().map((d) => d.lastFailure?.reason);
    for (const r of reasons())
      expect(r).toMatch(
        /\(download attempt 1 in a row; not fetched again before 2025-11-24T16:01:00\.000Z\)$/,
      );

    // Within the backoff: HELLOs (a boot loop) and a check fetch nothing, and count nothing.
    clock.advanceMs(59_999);
    for (let i = 0; i < 5; i++) helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 8 });

    // After it: one download again for all 8, counted as the 2nd failure in a row (not the 9th).
    clock.advanceMs(1);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(2);
    expect(agent.counters.rejected).toEqual({ FETCH_FAILED: 16 });
    for (const r of reasons())
      expect(r).toMatch(
        /\(download attempt 2 in a row; not fetched again before 2025-11-24T16:03:00\.000Z\)$/,
      );

    // The host is back: after the (doubled) backoff one download installs the release on all 8.
    gw.mode.now = "up";
    clock.advanceMs(120_000);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(3);
    expect(agent.counters.installs).toBe(8);
    expect(staged()).toEqual([]);
  });

  it("error: wrong bytes in a shared download count one attempt for each device waiting on it (mismatchAttempts 2: remembered on all 3 at the 2nd download)", async () => {
    const gw = await gateway();
    gw.mode.now = "other";
    const { agent, mem, clock } = await rig(gw.url, { mismatchAttempts: 2 });
    const { helloAll } = devices(agent, [1, 2, 3]);
    helloAll();
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(1);
    for (const d of agent.devices())
      expect(d.lastFailure?.reason).toContain(
        "(wrong bytes from its sources, attempt 1 of 2; not fetched again",
      );
    clock.advanceMs(60_000);
    await agent.check();
    await agent.idle();
    expect(gw.gets()).toBe(2);
    expect(agent.counters.rejected).toEqual({ HASH_MISMATCH: 6 });
    for (const id of [1, 2, 3])
      expect((await mem.getMeta(`updates/fw/failed/${id}/7`))?.toString()).toMatch(
        /^HASH_MISMATCH: .*attempt 2 of 2: remembered as failed\)$/,
      );
  });
});

describe("firmware agent: staging at stop", () => {
  it("behavior: stop() removes the staged image even when a download finished just before it, and no transfer starts after it", async () => {
    const gw = await gateway();
    const mem = new MemoryFrameStore();
    await mem.open();
    // The store answers the transfers' progress reads only when the test lets it: the devices
    // then have their image (downloaded and staged) but have not offered it yet.
    let letGo: () => void = () => undefined;
    const gate = new Promise<void>((res) => (letGo = res));
    let waiting = 0;
    const state: ListableStateStore = {
      getMeta: async (k) => {
        if (k.startsWith("updates/fw/progress/")) {
          waiting++;
          await gate;
        }
        return mem.getMeta(k);
      },
      putMeta: (k, v) => mem.putMeta(k, v),
      metaEntries: (p) => mem.metaEntries(p),
    };
    const { agent, staged } = await rig(gw.url, { state });
    const { lines, helloAll } = devices(agent, [1, 2]);
    helloAll();
    await agent.check();
    await expect.poll(() => waiting).toBe(2);
    expect(staged()).toEqual([sha]);
    expect(gw.gets()).toBe(1);

    expect(await within(agent.stop(), 3_000)).toBe("resolved");
    expect(staged()).toEqual([]);
    letGo();
    await agent.idle();
    expect(lines.map((l) => l.sent)).toEqual([[], []]);
    expect(agent.counters).toMatchObject({ offers: 0, rejected: {} });
    expect(staged()).toEqual([]);
    await mem.close();
  });
});
