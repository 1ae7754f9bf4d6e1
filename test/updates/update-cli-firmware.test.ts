/**
 * `vigil update retry --device ID` for a firmware release, in process against a stand-in for the
 * gateway's update routes (GET /api/updates, POST /api/updates/retry) served by a real
 * FirmwareUpdateAgent and a simulated MCU on an in-memory line: the exit status and the line say
 * whether the device took the release this time. The routes as the gateway serves them:
 * test/http/server.test.ts; the whole command against a running gateway on anvil:
 * update-cli.anvil.test.ts.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { factoryFirmware, type SimFirmware } from "../../device-sim/src/firmware/index.ts";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { updateCommand } from "../../gateway/src/cli/update.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FrameType } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { line } from "./fw-line.ts";
import { firmwareRelease } from "./fw-release.ts";

let server: Server | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** Release 7 (1.1.0) of a `bodyBytes`-byte firmware, served from a file:// URI. */
function release(bodyBytes: number): ReleaseRecord {
  const img = buildFirmwareImage({
    version: { major: 1, minor: 1, patch: 0 },
    securityCounter: 2,
    body: new Uint8Array(bodyBytes).map((_, i) => (i * 7) & 0xff),
  });
  const file = join(mkdtempSync(join(tmpdir(), "vigil-fw-")), "fw.vgfw");
  writeFileSync(file, img);
  return firmwareRelease(img, [pathToFileURL(file).href]);
}

/** The agent with device 1 (a simulated MCU) on an in-memory line, and the update routes over it. */
async function gateway(
  rel: ReleaseRecord,
  fw: SimFirmware,
): Promise<{ url: string; agent: FirmwareUpdateAgent }> {
  const state = new MemoryFrameStore();
  await state.open();
  const agent = new FirmwareUpdateAgent({
    releases: { activeRelease: async () => rel, getRelease: async () => rel },
    state,
    dir: join(mkdtempSync(join(tmpdir(), "vigil-fw-")), "updates"),
    targetOf: () => "sim-mcu",
  });
  const link = line(agent, fw);
  agent.onFrame(
    {
      type: FrameType.Hello,
      deviceId: 1,
      bootId: 1,
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: "sim-mcu",
      channels: [],
    },
    link,
  );
  const status = () => ({
    type: "updates",
    atMs: Date.now(),
    model: null,
    firmware: { devices: agent.devices(), counters: agent.counters },
  });
  // What gateway/src/http/server.ts answers (updates on, no model agent).
  server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const json = (body: unknown): void => {
      res.writeHead(u.pathname === "/api/updates" ? 200 : 202, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === "/api/updates") json({ enabled: true, status: status() });
    else if (u.pathname === "/api/updates/retry") {
      const device = Number(u.searchParams.get("device"));
      void agent.retry(device, BigInt(u.searchParams.get("release")!)).then((forgot) => {
        json({
          accepted: true,
          retried: { model: false, firmwareDevices: forgot ? [device] : [] },
          status: status(),
        });
        void agent.check();
      });
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, agent };
}

/** Runs `vigil update …` in process: exit status and what it printed. */
async function vigilUpdate(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((s) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((s) => ((stderr += String(s)), true));
  try {
    return { code: await updateCommand(argv), stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

describe("vigil update retry --device for a firmware release", () => {
  it("error: the device refuses the release again: exit 1 and one line naming the device, the code and the device's reason", async () => {
    // The image (20 kB) does not fit the device's 8 KiB slot: REFUSED / TOO_LARGE, every time.
    const fw = factoryFirmware({ deviceId: 1, slotSize: 8192, bodyBytes: 1000 });
    const { url, agent } = await gateway(release(20_000), fw);
    await agent.check();
    await agent.idle();
    expect(agent.counters.rejected).toEqual({ FW_REFUSED: 1 });

    const r = await vigilUpdate(["retry", "7", "--device", "1", "--url", url, "--wait", "20"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(
      "vigil update: release 7: failure forgotten (firmware on device(s) 1); checking again\n",
    );
    expect(r.stdout).toContain(
      "vigil update: release 7 was refused again by device 1: FW_REFUSED device 00000001 refused release 7: TOO_LARGE\n",
    );
    expect(r.code).toBe(1);
    expect(agent.counters.rejected).toEqual({ FW_REFUSED: 2 });
  });

  it("behavior: the device takes the release this time: exit 0, no refusal line", async () => {
    const fw = factoryFirmware({ deviceId: 1 });
    const { url, agent } = await gateway(release(6_000), fw);
    const r = await vigilUpdate(["retry", "7", "--device", "1", "--url", url, "--wait", "20"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain(
      "vigil update: release 7 is not remembered as refused on this gateway; checking anyway\n",
    );
    expect(r.stdout).not.toContain("refused again");
    expect(agent.counters).toMatchObject({ installs: 1, rejected: {} });
    expect(fw.running?.version).toEqual({ major: 1, minor: 1, patch: 0 });
  });
});
