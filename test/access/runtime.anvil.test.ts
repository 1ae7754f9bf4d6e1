/**
 * Access control in the running gateway against the registry on anvil: the registry watch
 * (eth_getLogs from the deployment block on a 1-second node-cron schedule), registry admission,
 * the embedded broker's device and reader authentication, the gateway's own standing governing
 * sealing, and an RPC outage longer than the staleness bound.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Wallet } from "ethers";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { hashPassword } from "../../gateway/src/access/passwords.ts";
import { mintReaderToken } from "../../gateway/src/access/reader-token.ts";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import type { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { decodeFrame, NackReason } from "../../gateway/src/protocol/frame.ts";
import { domainOf, Runtime } from "../../gateway/src/runtime.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { dataFrame, hex8, SECRET } from "./rig.ts";

const GW: Hex = `0x${"5a".repeat(32)}`;
const DEV = 0x0a;
const DEV_UNREG = 0x0c;
/** A second registered sensor for the tests after DEV was revoked (revocation is final on chain). */
const DEV2 = 0x0e;

let dir: string;
let lc: LocalChain;
let admin: EthersRegistryClient;
let rt: Runtime;
const reader = Wallet.createRandom();
const watcher = Wallet.createRandom();
const clients: MqttClient[] = [];

async function device(id: number): Promise<{ c: MqttClient; nacks: number[] }> {
  const c = await mqtt.connectAsync(rt.embedded!.url, {
    clientId: `dev-${hex8(id)}-${clients.length}`,
    username: hex8(id),
    password: SECRET,
    reconnectPeriod: 0,
  });
  clients.push(c);
  const nacks: number[] = [];
  c.on("message", (t, p) => {
    if (t.endsWith("/nack")) nacks.push((decodeFrame(p) as { reason: number }).reason);
  });
  await c.subscribeAsync(`vigil/v1/ingest/${hex8(id)}/nack`, { qos: 1 });
  return { c, nacks };
}

function seqs(id: number): number[] {
  return accepted.filter((r) => r.deviceId === id).map((r) => r.seq);
}
const accepted: Array<{ deviceId: number; seq: number }> = [];
let logged = "";

/**
 * Records the registry refreshes from now on, in order, without timing them: after every
 * successful refresh the runtime swaps the watch's view into `rt.registryState` and then, in the
 * same synchronous step, acts on it (sweeps the broker, re-evaluates standing). Each entry is that
 * view and, when given, `probe()` read once that step is over (a microtask later). `restore()`
 * removes the hook.
 */
function recordRefreshes<T>(probe?: () => T): {
  seen: Array<{ view: RegistryView; after?: T }>;
  restore: () => void;
} {
  const state = rt.registryState;
  let view = state.view;
  const seen: Array<{ view: RegistryView; after?: T }> = [];
  Object.defineProperty(state, "view", {
    configurable: true,
    enumerable: true,
    get: () => view,
    set: (v: RegistryView) => {
      view = v;
      const entry: { view: RegistryView; after?: T } = { view: v };
      seen.push(entry);
      if (probe) queueMicrotask(() => (entry.after = probe()));
    },
  });
  const restore = (): void => {
    Object.defineProperty(state, "view", {
      configurable: true,
      enumerable: true,
      writable: true,
      value: view,
    });
  };
  return { seen, restore };
}

/**
 * "Within one refresh interval", counted in refreshes rather than wall time (a loaded machine may
 * run a tick late): `before` refreshes had completed when the transaction was known mined; the next
 * one may have read the chain before it was mined, the one after that certainly did not. So the
 * change must show at refresh `before + 2` at the latest (1-based).
 */
const PICKED_UP_BY = (before: number): number => before + 2;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-access-"));
  lc = await localChain({ dataDir: dir, gatewayId: GW });
  admin = await EthersRegistryClient.connect({
    rpcUrl: lc.anvil.url,
    privateKey: ANVIL_DEV_KEYS[0]!,
    registry: lc.deployment.contracts.VigilRegistry.address,
    releases: lc.deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 50,
  });
  await admin.registerSensor(GW, DEV, "none", "0x");
  await admin.registerSensor(GW, DEV2, "none", "0x");
  await admin.grantGatewayAccess(GW, reader.address.toLowerCase() as Hex, (await admin.now()) + 86_400n);
  await admin.grantGatewayAccess(GW, watcher.address.toLowerCase() as Hex, (await admin.now()) + 86_400n);
  writeFileSync(
    join(dir, "devices.passwd"),
    [DEV, DEV2, DEV_UNREG].map((d) => hashPassword(hex8(d), SECRET)).join("\n"),
  );
  const config = resolveConfig({
    dataDir: dir,
    mqtt: { embedded: { port: 0, auth: "registry", passwordFile: "devices.passwd" } },
    ingest: { admission: "registry" },
    registry: {
      schedule: "* * * * * *",
      reorgDepth: 2,
      maxStaleMs: 3000,
      // A PID file that holds no PID (a broker that has not written it yet): warned, not silent.
      mosquittoExport: { dir: "mosquitto", dynsec: false, pidFile: "mosquitto.pid" },
    },
    models: { enabled: false },
    attest: { gatewayId: GW, gatewayName: "gw-1", batchIntervalMs: 200 },
    chain: { rpcUrl: lc.anvil.url, deployment: lc.deploymentFile, confirmations: 1, anchorIntervalMs: 200 },
    store: { minFreeBytes: 0, reserveBytes: 1024 * 1024 },
    http: { port: 0 }, // the default 9479 may be taken on a shared machine
  });
  writeFileSync(join(dir, "mosquitto.pid"), "starting\n");
  const log = pino(
    { level: "warn" },
    new Writable({
      write(chunk, _enc, cb) {
        logged += String(chunk);
        cb();
      },
    }),
  );
  rt = new Runtime({ config, passphrase: lc.passphrase, senderKey: lc.senderKey, log });
  rt.ingest.onStored((f) => accepted.push({ deviceId: f.deviceId, seq: f.seq }));
  await rt.start();
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await rt?.stop();
  await admin?.close();
  await lc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("access control in the running gateway, registry on anvil", () => {
  it("the watch filled the cache from the deployment block; the gateway is active and seals; the Mosquitto files list the active sensors", () => {
    expect(readFileSync(join(dir, "mosquitto", "vigil.passwd"), "utf8")).toContain(`${hex8(DEV)}:`);
    expect(readFileSync(join(dir, "mosquitto", "vigil.passwd"), "utf8")).not.toContain(`${hex8(DEV_UNREG)}:`);
    expect(rt.watch!.status()).toMatchObject({ state: "fresh" });
    expect(logged).toContain(
      "registry.mosquittoExport.pidFile holds no PID: the files are written, the broker is not signalled",
    );
    expect(rt.registryState.view.sensorStatus(DEV)).toBe("active");
    expect(rt.standing).toBe("active");
  });

  it("the watch's copy is on /metrics (vigil_registry_cache_age_seconds) with its block", async () => {
    const reg = rt.registry()!;
    expect(reg.block).toBe(rt.watch!.status().confirmedBlock);
    expect(reg.cacheAgeSeconds).toBeGreaterThanOrEqual(0);
    const text = await (await fetch(`http://127.0.0.1:${rt.http!.port}/metrics`)).text();
    expect(text).toMatch(/^vigil_registry_cache_age_seconds \d+(\.\d+)?(e[-+]?\d+)?$/m);
  });

  it("error: an unregistered sensor with valid credentials is NACKed UNKNOWN_DEVICE", async () => {
    const { c, nacks } = await device(DEV_UNREG);
    await c.publishAsync(`vigil/v1/ingest/${hex8(DEV_UNREG)}`, dataFrame(DEV_UNREG, 1), { qos: 1 });
    await vi.waitFor(() => expect(nacks).toEqual([NackReason.UNKNOWN_DEVICE]));
    expect(seqs(DEV_UNREG)).toEqual([]);
  });

  it("a reader with a token reads; revoked on chain, it is disconnected within one refresh interval", async () => {
    const t = await mintReaderToken(
      reader.privateKey,
      domainOf(lc.deployment),
      GW,
      Math.floor(Date.now() / 1000) + 600,
    );
    const r = await mqtt.connectAsync(rt.embedded!.url, { clientId: "dash", reconnectPeriod: 0, ...t });
    clients.push(r);
    const g = await r.subscribeAsync("vigil/v1/site-1/gw-1/+/alert", { qos: 1 });
    expect(g[0]?.qos).toBe(1);
    const gone = new Promise<void>((res) => r.once("close", () => res()));
    const addr = reader.address.toLowerCase() as Hex;
    const refreshes = recordRefreshes(() => rt.embedded!.identityOf("dash") !== undefined);
    try {
      await admin.revokeGatewayAccess(GW, addr);
      const before = refreshes.seen.length;
      await gone;
      const first = refreshes.seen.findIndex(
        (e) => !e.view.reader(addr, Math.floor(Date.now() / 1000)).allowed,
      );
      expect(first).toBeGreaterThanOrEqual(0);
      // The 1-second schedule: the first refresh after the revocation shows it…
      expect(rt.watch!.intervalMs).toBe(1000);
      expect(first + 1).toBeLessThanOrEqual(PICKED_UP_BY(before));
      // …and that same refresh disconnected the reader (not a later sweep on the 10 s timer).
      await vi.waitFor(() => expect(refreshes.seen[first]!.after).toBeDefined());
      expect(refreshes.seen[first]!.after).toBe(false);
    } finally {
      refreshes.restore();
    }
  });

  it("error: a sensor revoked mid-stream: earlier frames stored, sealed and anchored; later frames NACKed REVOKED_DEVICE", async () => {
    const { c, nacks } = await device(DEV);
    for (let s = 1; s <= 3; s++)
      await c.publishAsync(`vigil/v1/ingest/${hex8(DEV)}`, dataFrame(DEV, s), { qos: 1 });
    expect(seqs(DEV)).toEqual([1, 2, 3]);
    const refreshes = recordRefreshes();
    // The broker is restarting (no pid file): the revocation still reaches its files.
    rmSync(join(dir, "mosquitto.pid"));
    try {
      await admin.setSensorStatus(GW, DEV, "revoked");
      const before = refreshes.seen.length;
      let s = 4;
      // The timeout bounds a hung schedule; how soon is asserted in refreshes below.
      await vi.waitFor(
        async () => {
          await c.publishAsync(`vigil/v1/ingest/${hex8(DEV)}`, dataFrame(DEV, s++), { qos: 1 });
          expect(nacks).toContain(NackReason.REVOKED_DEVICE);
        },
        { timeout: 15_000, interval: 50 },
      );
      // Admission reads the view the refresh swapped in: the first refresh after the change shows it.
      const first = refreshes.seen.findIndex((e) => e.view.sensorStatus(DEV) === "revoked");
      expect(first).toBeGreaterThanOrEqual(0);
      expect(first + 1).toBeLessThanOrEqual(PICKED_UP_BY(before));
    } finally {
      refreshes.restore();
    }
    // The external broker's files followed: the revoked sensor is gone from them (only the signal
    // was skipped, and said so).
    await vi.waitFor(() => expect(logged).toContain("registry.mosquittoExport.pidFile cannot be read"));
    const passwd = readFileSync(join(dir, "mosquitto", "vigil.passwd"), "utf8");
    expect(passwd).not.toContain(`${hex8(DEV)}:`);
    expect(passwd).toContain(`${hex8(DEV2)}:`);
    expect(readFileSync(join(dir, "mosquitto", "vigil.acl"), "utf8")).toContain(
      `topic write vigil/v1/ingest/${hex8(DEV2)}`,
    );
    const first = seqs(DEV);
    expect(first.slice(0, 3)).toEqual([1, 2, 3]);
    // Every stored frame (1–3 included) sealed, then that batch anchored.
    await vi.waitFor(() => expect(rt.sealer!.backlog()).toBe(0), { timeout: 15_000 });
    const batch = rt.store.lastBatchSeq();
    expect(batch).toBeGreaterThanOrEqual(1);
    await vi.waitFor(() => expect(rt.store.anchoredThrough()).toBeGreaterThanOrEqual(batch), {
      timeout: 15_000,
    });
  });

  it("error: the gateway suspended on chain: sealing stops with a retained access status, frames are still stored; resumed, sealing goes on", async () => {
    await admin.suspendGateway(GW);
    await vi.waitFor(() => expect(rt.standing).toBe("suspended"), { timeout: 5000 });
    const sealed = rt.store.lastBatchSeq();
    const w = await mqtt.connectAsync(rt.embedded!.url, {
      clientId: "watcher",
      reconnectPeriod: 0,
      ...(await mintReaderToken(
        watcher.privateKey,
        domainOf(lc.deployment),
        GW,
        Math.floor(Date.now() / 1000) + 600,
      )),
    });
    clients.push(w);
    const retained = new Promise<string>((res) => w.once("message", (_t, p) => res(p.toString())));
    await w.subscribeAsync("vigil/v1/site-1/gw-1/access", { qos: 1 });
    expect(JSON.parse(await retained)).toMatchObject({ standing: "suspended", sealing: false });
    // Frames are still stored while sealing is stopped.
    const { c: dev } = await device(DEV2);
    const before = rt.store.stats().lastIndex;
    await dev.publishAsync(`vigil/v1/ingest/${hex8(DEV2)}`, dataFrame(DEV2, 1000), { qos: 1 });
    expect(rt.store.stats().lastIndex).toBeGreaterThan(before);
    // Two more refreshes (≈ 2 s, ten batch intervals): nothing was sealed meanwhile.
    const r0 = rt.watch!.status().refreshes;
    await vi.waitFor(() => expect(rt.watch!.status().refreshes).toBeGreaterThan(r0 + 1), { timeout: 5000 });
    expect(rt.store.lastBatchSeq()).toBe(sealed);
    await admin.resumeGateway(GW);
    await vi.waitFor(() => expect(rt.standing).toBe("active"), { timeout: 5000 });
    await vi.waitFor(() => expect(rt.store.lastBatchSeq()).toBeGreaterThan(sealed), { timeout: 5000 });
  });

  it("error: the gateway revoked on chain: sealing stops for good, frames are still stored", async () => {
    await admin.revokeGateway(GW);
    await vi.waitFor(() => expect(rt.standing).toBe("revoked"), { timeout: 5000 });
    const sealed = rt.store.lastBatchSeq();
    const { c } = await device(DEV2);
    await c.publishAsync(`vigil/v1/ingest/${hex8(DEV2)}`, dataFrame(DEV2, 1500), { qos: 1 });
    expect(seqs(DEV2)).toContain(1500);
    const r0 = rt.watch!.status().refreshes;
    await vi.waitFor(() => expect(rt.watch!.status().refreshes).toBeGreaterThan(r0 + 1), { timeout: 5000 });
    expect(rt.store.lastBatchSeq()).toBe(sealed);
  });

  it("error: the RPC endpoint down for longer than the staleness bound: the watch reports stale, admitted devices keep sending", async () => {
    const { c } = await device(DEV2);
    await lc.anvil.stop();
    await vi.waitFor(() => expect(rt.watch!.status().state).toBe("stale"), {
      timeout: 10_000,
      interval: 100,
    });
    expect(rt.registryState.stale).toBe(true);
    await c.publishAsync(`vigil/v1/ingest/${hex8(DEV2)}`, dataFrame(DEV2, 2000), { qos: 1 });
    expect(seqs(DEV2)).toContain(2000);
  });
});
