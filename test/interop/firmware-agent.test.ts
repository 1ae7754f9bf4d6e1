/**
 * Firmware release → simulated MCU, end to end: a firmware image published and approved 2-of-3 on
 * anvil; the gateway's SerialSource (with the firmware agent as its hook) reads the simulator over
 * a real pty pair; the agent offers the release to the sensors of its target, the MCU installs it
 * and comes back with the new version in its HELLO; progress is kept in the store, the install is
 * counted per device and reported on chain. A device without update code is refused once and
 * not offered again.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { SerialTransport } from "../../device-sim/src/transports/serial.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { SerialSource } from "../../gateway/src/ingest/serial/serial-source.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { planRelease } from "../../gateway/src/cli/release.ts";
import { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import { chainInstallReporter, chainReleaseSource } from "../../gateway/src/updates/model-agent.ts";
import { ptyPair, type PtyPair } from "../helpers/procs.ts";
import { GATEWAY_ID, approve, chainRig, type ChainRig } from "../updates/rig.ts";

let pty: PtyPair | undefined;
let r: ChainRig | undefined;
afterEach(async () => {
  await pty?.stop();
  await r?.close();
  pty = undefined;
  r = undefined;
});

describe("firmware update agent over a pty, releases on anvil", () => {
  it("behavior: an approved firmware release is offered to its target's sensors, installed, counted and reported", async () => {
    r = await chainRig();
    pty = await ptyPair();
    const file = join(r.dataDir, "sim-mcu-1.1.0.vgfw");
    const body = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
    writeFileSync(
      file,
      buildFirmwareImage({ version: { major: 1, minor: 1, patch: 0 }, securityCounter: 2, body }),
    );
    const plan = await planRelease({ kind: "firmware", target: "sim-mcu", file });
    expect(plan.input.version).toBe(1_001_000n);
    const id = (await r.manager.proposeRelease(plan.input)).releaseId;
    await approve(r, id);

    const state = new MemoryFrameStore();
    await state.open();
    // The first install report fails (an RPC outage at that moment); the next check sends it again.
    const reporter = chainInstallReporter(r.gateway, GATEWAY_ID, r.sign);
    let reportOutage = true;
    const agent = new FirmwareUpdateAgent({
      releases: chainReleaseSource(r.gateway, GATEWAY_ID),
      reporter: {
        report: (releaseId) => {
          if (!reportOutage) return reporter.report(releaseId);
          reportOutage = false;
          return Promise.reject(new Error("RPC unreachable"));
        },
      },
      state,
      dir: join(r.dataDir, "updates"),
      targetOf: () => "sim-mcu",
      session: { offerTimeoutMs: 300, maxOffers: 3 },
    });
    const ingest = new Ingest({ sink: new MemorySink() });
    const source = new SerialSource(ingest, { path: pty.b, firmware: agent });
    await source.start();
    const sim = new Simulator({
      transport: new SerialTransport({ path: pty.a }),
      devices: 2,
      rate: 20,
      durationS: 6,
      drainMs: 2000,
      seed: 5,
      firmware: { for: (d) => (d === 1 ? factoryFirmware({ deviceId: d }) : undefined) },
    });
    const run = sim.run();
    await expect.poll(() => agent.devices().length, { timeout: 5000 }).toBe(2);
    await agent.check();
    await agent.idle();
    await run;
    await source.stop();

    expect(agent.counters.installsByDevice).toEqual({ 1: 1 });
    // Device 2 has no update support: it never answers, which is an interruption, not a failure.
    expect(agent.counters.rejected).toEqual({});
    expect(agent.counters.interrupted).toBe(1);
    expect(agent.devices().find((d) => d.id === 1)?.firmware).toBe("1.1.0");
    expect(ingest.counters.device(1).firmware).toBe("1.1.0"); // the HELLO after the reboot
    expect(sim.devices[0]!.updater!.status()).toMatchObject({ result: 1, securityCounter: 2 });
    expect((await agent.progress.load(1, Number(id)))?.phase).toBe("done");
    expect(agent.counters).toMatchObject({ reports: 0, reportErrors: 1 });
    expect(await r.gateway.installedRelease(GATEWAY_ID, "firmware")).toBe(0n);
    // Not offered again: device 1 runs it, device 2 is offered again only at its next HELLO. The
    // failed report is sent at this check, and only once.
    const offers = agent.counters.offers;
    await agent.check();
    await agent.idle();
    expect(agent.counters.offers).toBe(offers);
    expect(agent.counters).toMatchObject({ reports: 1, reportErrors: 1 });
    expect(await r.gateway.installedRelease(GATEWAY_ID, "firmware")).toBe(id);
    await agent.check();
    expect(agent.counters.reports).toBe(1);
    await state.close();
  });
});
