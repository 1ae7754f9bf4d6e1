// The update agents as the runtime wires them (config `updates`): a gateway on anvil with the
// embedded broker and one live FD001 model; C-MAPSS engines stream over MQTT; an int8 release is
// approved 2-of-3 and swapped in while they stream; the retained update status and the gateway
// status say so, and the install is reported on chain.
import { dirname } from "node:path";
import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { GATEWAY_ID, approve, chainRig, propose, releaseFolder, type ChainRig } from "./rig.ts";

let r: ChainRig | undefined;
let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.stop();
  await r?.close();
  rt = undefined;
  r = undefined;
});

describe("runtime with updates enabled, on anvil", () => {
  it("behavior: an approved release is swapped in while frames flow; retained status and on-chain report follow", async () => {
    r = await chainRig();
    const profile = "cmapss-v2"; // what the simulator's FD001 engines announce
    const live = releaseFolder({ profile, version: "3.0.0", precision: "float32" });
    rt = new Runtime({
      config: resolveConfig({
        dataDir: r.dataDir,
        site: "s1",
        mqtt: { embedded: { port: 0 } },
        attest: { gatewayId: GATEWAY_ID, gatewayName: "g1", batchIntervalMs: 1000 },
        chain: { rpcUrl: r.chain.anvil.url, deployment: "deployment.json", confirmations: 1 },
        store: { minFreeBytes: 0, reserveBytes: 0 },
        models: { dir: dirname(live.manifest) },
        log: { statsIntervalMs: 0 },
        updates: {
          enabled: true,
          schedule: "0 0 1 1 *",
          shadowWindows: 10,
          maxCostFactor: 50,
          firmware: false,
        },
      }),
      passphrase: r.chain.passphrase,
      senderKey: r.chain.senderKey,
    });
    await rt.start();
    const url = rt.embedded!.url;
    const watcher = await mqtt.connectAsync(url, { clientId: "watcher" });
    const statuses: Array<{ model: { lastInstall?: { releaseId: string; sha256: string } } }> = [];
    const gwStatus: Array<{ reason: string; models: Array<{ sha256: string }> }> = [];
    watcher.on("message", (t, p) => {
      if (t.endsWith("/updates")) statuses.push(JSON.parse(p.toString()) as (typeof statuses)[number]);
      else gwStatus.push(JSON.parse(p.toString()) as (typeof gwStatus)[number]);
    });
    await watcher.subscribeAsync(["vigil/v1/s1/g1/updates", "vigil/v1/s1/g1/status"], { qos: 1 });
    const sim = new Simulator({
      transport: new MqttTransport({ url, clientId: "engines" }),
      devices: 3,
      profile: "cmapss",
      rate: 50,
      durationS: 6,
      seed: 4,
    });
    const run = sim.run();
    await expect.poll(() => rt!.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
    const rel = releaseFolder({ profile, version: "3.1.0" });
    const id = await propose(r, { profile, ...rel });
    await approve(r, id);
    await rt.updates!.model!.check();
    const now = rt.loop!.models[0]!;
    expect(`0x${now.sha256}`).toBe((await r.gateway.getRelease(id))!.contentHash);
    const before = rt.loop!.counters.windowsRun;
    await run;
    expect(rt.loop!.counters.windowsRun).toBeGreaterThan(before); // frames kept flowing into the new model
    expect(await r.gateway.installedRelease(GATEWAY_ID, "model")).toBe(id);
    await expect
      .poll(() => statuses.at(-1)?.model.lastInstall?.releaseId, { timeout: 5000 })
      .toBe(id.toString());
    await expect.poll(() => gwStatus.at(-1)?.reason, { timeout: 5000 }).toBe("models");
    expect(gwStatus.at(-1)!.models[0]!.sha256).toBe(now.sha256);
    await watcher.endAsync();
  });
});
