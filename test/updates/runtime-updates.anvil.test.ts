// The update agents as the runtime wires them (config `updates`): a gateway on anvil with the
// embedded broker and one live FD001 model; C-MAPSS engines stream over MQTT; an int8 release is
// approved 2-of-3 and swapped in while they stream; the retained update status and the gateway
// status say so, and the install is reported on chain. A release of the package's model file under
// a new manifest is installed and reported too, and put back after a restart. With the registry
// watch on, a release activated on chain is picked up at the watch's next refresh, not at the
// (yearly) cron tick.
// Freeze: while the RPC refuses, the gateway raises the update-check-stale gateway alert, and
// clears it after a successful check.
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { Runtime } from "../../gateway/src/runtime.ts";
import { checkPayload } from "../alerts/helpers.ts";
import {
  GATEWAY_ID,
  PROFILE,
  UPDATES,
  approve,
  chainRig,
  engines,
  gateway,
  propose,
  releaseFolder,
  type ChainRig,
} from "./rig.ts";

let r: ChainRig | undefined;
let rt: Runtime | undefined;
let proxy: RpcProxy | undefined;
afterEach(async () => {
  await rt?.stop();
  await proxy?.close();
  await r?.close();
  rt = undefined;
  r = undefined;
  proxy = undefined;
});

/** A JSON-RPC proxy on loopback in front of anvil that can be told to refuse (reset every connection). */
interface RpcProxy {
  url: string;
  refuse: boolean;
  close(): Promise<void>;
}

async function rpcProxy(target: string): Promise<RpcProxy> {
  const sockets = new Set<Socket>();
  const p = { refuse: false } as RpcProxy;
  const server: Server = createServer((req, res) => {
    if (p.refuse) {
      req.socket.destroy();
      return;
    }
    const body: Buffer[] = [];
    req.on("data", (c: Buffer) => body.push(c));
    req.on("end", () => {
      fetch(target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: Buffer.concat(body),
      })
        .then(async (up) => {
          res.writeHead(up.status, { "content-type": "application/json" });
          res.end(Buffer.from(await up.arrayBuffer()));
        })
        .catch(() => req.socket.destroy());
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  p.close = () =>
    new Promise<void>((ok) => {
      for (const s of sockets) s.destroy();
      server.close(() => ok());
    });
  return p;
}

describe("runtime with updates enabled, on anvil", () => {
  it("behavior: an approved release is swapped in while frames flow; retained status and on-chain report follow", async () => {
    r = await chainRig();
    const profile = PROFILE;
    rt = gateway(r, {
      updates: UPDATES,
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
    const run = engines(url, 6).run();
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

  it("behavior: a release of the package's model file under a new manifest is swapped in and reported, and after a restart put back over the package's older manifest", async () => {
    r = await chainRig();
    const config = { updates: UPDATES };
    rt = gateway(r, config);
    await rt.start();
    const packaged = rt.loop!.models[0]!;
    const run = engines(rt.embedded!.url, 6).run();
    await expect.poll(() => rt!.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
    // The same ONNX file (FD001 float), new alert thresholds: a release that changes only the manifest.
    const rel = releaseFolder({
      profile: PROFILE,
      version: "3.1.0",
      precision: "float32",
      edit: (m) => void (m.alerts![0]!.threshold = 40),
    });
    const id = await propose(r, { profile: PROFILE, ...rel });
    expect((await r.gateway.getRelease(id))!.contentHash).toBe(`0x${packaged.sha256}`);
    await approve(r, id);
    const agent = rt.updates!.model!;
    await agent.check();
    const live = () =>
      rt!.loop!.models.map((m) => [m.sha256, m.manifest.version, m.manifest.alerts![0]!.threshold]);
    expect(live()).toEqual([[packaged.sha256, "3.1.0", 40]]);
    expect(agent.counters).toMatchObject({ installs: 1, reports: 1, rejected: {} });
    expect(agent.status().lastInstall).toMatchObject({ releaseId: id.toString(), reported: true });
    expect(await r.gateway.installedRelease(GATEWAY_ID, "model")).toBe(id);
    await agent.check(); // the release is live now: neither installed again nor refused
    expect(agent.counters).toMatchObject({ installs: 1, reports: 1, rejected: {} });
    await run;

    // A restart on the same data folder: the package again ships FD001 float under its 3.0.0 manifest.
    await rt.stop();
    rt = gateway(r, config);
    await rt.start();
    const again = rt.updates!.model!;
    await expect.poll(() => again.status().lastCheckMs, { timeout: 10_000 }).toBeDefined(); // after the restore
    expect(live()).toEqual([[packaged.sha256, "3.1.0", 40]]);
    expect(again.counters).toMatchObject({ installs: 0, reports: 0, checkErrors: 0, rejected: {} });
  });

  it("behavior: a release activated on chain is picked up at the registry watch's next refresh, not the cron tick", async () => {
    r = await chainRig();
    rt = gateway(r, {
      // The watch refreshes every second; the update cron runs once a year.
      registry: { enabled: true, schedule: "* * * * * *", reorgDepth: 0 },
      updates: UPDATES,
    });
    await rt.start();
    const agent = rt.updates!.model!;
    await expect.poll(() => agent.status().lastCheckMs, { timeout: 10_000 }).toBeDefined(); // the start-up check
    const checksAtStart = agent.counters.checks;
    const run = engines(rt.embedded!.url, 12).run();
    await expect.poll(() => rt!.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
    const rel = releaseFolder({ profile: PROFILE, version: "3.1.0" });
    const id = await propose(r, { profile: PROFILE, ...rel });
    // Proposed and approved once: not Active, so a refresh that sees no activation checks nothing.
    await r.approvers[0]!.approveRelease(id);
    const approvedAt = Date.now();
    await r.approvers[1]!.approveRelease(id); // the second approval emits ReleaseActivated
    const want = (await r.gateway.getRelease(id))!.contentHash;
    await expect.poll(() => `0x${rt!.loop!.models[0]!.sha256}`, { timeout: 20_000 }).toBe(want);
    const swapMs = Date.now() - approvedAt;
    expect(agent.counters.checks).toBeGreaterThan(checksAtStart); // checked without being asked
    // The loop serves the new model as soon as it is promoted; the install is counted after the
    // agent has recorded it and unloaded the old one (model-agent.ts), so wait for that too.
    await expect.poll(() => agent.counters.installs, { timeout: 10_000 }).toBe(1);
    await expect.poll(() => r!.gateway.installedRelease(GATEWAY_ID, "model"), { timeout: 10_000 }).toBe(id);
    console.info(`approval → swap through the registry watch: ${swapMs} ms (watch every 1 s, cron yearly)`);
    await run;
  });

  it("error: the RPC down when the gateway starts with updates on: it starts (degraded), the check fails and is counted; with the RPC back, a check succeeds", async () => {
    r = await chainRig();
    proxy = await rpcProxy(r.chain.anvil.url);
    proxy.refuse = true;
    rt = gateway(
      r,
      { updates: { enabled: true, schedule: "0 0 1 1 *", staleAfterMs: 60_000, firmware: false } },
      proxy.url,
    );
    await rt.start();
    const agent = rt.updates!.model!;
    await rt.updates!.check();
    expect(agent.status().lastCheckError).toBeTruthy();
    proxy.refuse = false;
    await rt.updates!.check();
    expect(agent.status().lastCheckError).toBeUndefined();
    expect(agent.status().lastCheckMs).toBeDefined();
  });

  it("attack: freeze — while the RPC refuses, update-check-stale is raised on the gateway's alert topic; a successful check clears it", async () => {
    r = await chainRig();
    proxy = await rpcProxy(r.chain.anvil.url);
    rt = gateway(
      r,
      { updates: { enabled: true, schedule: "0 0 1 1 *", staleAfterMs: 1000, firmware: false } },
      proxy.url,
    );
    await rt.start();
    const agent = rt.updates!.model!;
    const sub = await mqtt.connectAsync(rt.embedded!.url, { clientId: "dashboard" });
    const alerts: Array<Record<string, unknown>> = [];
    sub.on("message", (_t, p) => alerts.push(checkPayload("gateway-alert", p)));
    await sub.subscribeAsync("vigil/v1/+/+/alert", { qos: 1 });
    await expect.poll(() => agent.status().lastCheckMs, { timeout: 10_000 }).toBeDefined();
    await expect.poll(() => agent.status().stale).toBe(false);
    alerts.length = 0;

    proxy.refuse = true;
    await rt.updates!.check(); // fails: the RPC resets the connection
    expect(agent.status().lastCheckError).toBeTruthy();
    await expect.poll(() => alerts.length, { timeout: 10_000 }).toBe(1);
    expect(alerts[0]).toMatchObject({
      type: "gateway-alert",
      kind: "update-check-stale",
      state: "raised",
      site: "s1",
      gateway: "g1",
      severity: "warning",
      detail: { staleAfterMs: 1000 },
    });
    expect(agent.status()).toMatchObject({ stale: true });

    await rt.updates!.check(); // still refused: raised once, not again
    proxy.refuse = false;
    await rt.updates!.check();
    await expect.poll(() => alerts.length, { timeout: 10_000 }).toBe(2);
    expect(alerts[1]).toMatchObject({
      kind: "update-check-stale",
      state: "cleared",
      id: alerts[0]!.id,
      detail: { lastError: null },
    });
    expect(agent.status().stale).toBe(false);
    expect(rt.alerts.counters).toMatchObject({ gatewayAlertsRaised: 1, gatewayAlertsCleared: 1 });
    await sub.endAsync();
  });
});
