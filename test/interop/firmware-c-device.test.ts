/**
 * The gateway's FirmwareSession against the C reference's update agent and bootloader
 * (hardware/firmware-ref/vigil_fwu.c, run as build/vigil_fwdev on one end of a socat pty pair):
 * the two independent implementations of PROTOCOL.md's firmware update agree on the wire.
 * The C code is built with make (a missing compiler fails the suite; CI installs it).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { FrameType, FwResult } from "../../gateway/src/protocol/frame.ts";
import { FirmwareUpdateError } from "../../gateway/src/updates/firmware/errors.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FirmwareSession } from "../../gateway/src/updates/firmware/session.ts";
import { GatewayFirmwarePort } from "../helpers/firmware-link.ts";
import { ptyPair, stop, type PtyPair } from "../helpers/procs.ts";

const REF = fileURLToPath(new URL("../../hardware/firmware-ref", import.meta.url));
const ID = 0x00c0_ffee;

beforeAll(() => {
  execFileSync("make", ["-C", REF, "tool"], { stdio: "pipe" });
});

function image(minor: number, counter: number, bytes: number): Buffer {
  const body = new Uint8Array(bytes).map((_, i) => (i * 17 + minor * 5) & 0xff);
  return buildFirmwareImage({ version: { major: 2, minor, patch: 0 }, securityCounter: counter, body });
}

let pty: PtyPair | undefined;
let dev: ChildProcess | undefined;
let gw: GatewayFirmwarePort | undefined;
afterEach(async () => {
  dev?.stdin?.end();
  await stop(dev);
  await gw?.close();
  await pty?.stop();
  dev = undefined;
  gw = undefined;
  pty = undefined;
});

/** Starts vigil_fwdev (factory image v2.0.0, counter 4) and the gateway port; waits for its HELLO. */
async function cDevice(extra: string[] = []): Promise<GatewayFirmwarePort> {
  pty = await ptyPair();
  const dir = mkdtempSync(join(tmpdir(), "vigil-fwdev-"));
  const factory = join(dir, "factory.bin");
  writeFileSync(factory, image(0, 4, 20_000));
  gw = new GatewayFirmwarePort(pty.b);
  await gw.open();
  dev = spawn(join(REF, "build", "vigil_fwdev"), [pty.a, ID.toString(16), factory, ...extra], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  const g = gw;
  await expect.poll(() => g.hellos.length, { timeout: 5000 }).toBe(1);
  return g;
}

describe("FirmwareSession ⇄ the C reference bootloader (vigil_fwdev) over a pty pair", () => {
  it("behavior: installs, swaps, confirms; the C device's HELLO announces the new version", async () => {
    const g = await cDevice();
    const img = image(1, 5, 70_000);
    const s = new FirmwareSession({ deviceId: ID, releaseId: 11, image: img, send: g.send });
    g.session = s;
    const r = await s.start();
    expect(r).toMatchObject({
      firmware: { major: 2, minor: 1, patch: 0 },
      bytesSent: img.length,
      rewinds: 0,
    });
    expect(g.hellos.map((h) => h.firmware)).toEqual(["2.0.0", "2.1.0"]);
    const statuses = g.received.filter((f) => f.type === FrameType.FwStatus);
    expect(statuses.at(-1)).toMatchObject({ result: FwResult.Installed, securityCounter: 5, releaseId: 11 });
    // The C device announced its capabilities: window 4, 224-byte chunks, 256 KiB slot.
    expect(statuses[0]).toMatchObject({ window: 4, maxChunk: 224, slotSize: 256 * 1024, securityCounter: 4 });
  });

  it("error: refuses an older security counter at the offer (OLDER_VERSION)", async () => {
    const g = await cDevice();
    const s = new FirmwareSession({ deviceId: ID, releaseId: 12, image: image(5, 3, 5000), send: g.send });
    g.session = s;
    const e = await s.start().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FirmwareUpdateError);
    expect([(e as FirmwareUpdateError).code, (e as FirmwareUpdateError).reason]).toEqual([
      "REFUSED",
      "OLDER_VERSION",
    ]);
  });

  it("error: an image that never confirms is reverted by the C bootloader (REVERTED / NOT_CONFIRMED)", async () => {
    const g = await cDevice(["--never-confirm"]);
    const s = new FirmwareSession({ deviceId: ID, releaseId: 13, image: image(1, 5, 30_000), send: g.send });
    g.session = s;
    const e = await s.start().catch((x: unknown) => x);
    expect([(e as FirmwareUpdateError).code, (e as FirmwareUpdateError).reason]).toEqual([
      "REVERTED",
      "NOT_CONFIRMED",
    ]);
    expect(g.hellos.map((h) => h.firmware)).toEqual(["2.0.0", "2.1.0", "2.0.0"]);
  });
});
