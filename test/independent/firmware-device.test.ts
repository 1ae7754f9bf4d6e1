/**
 * The independent firmware device (firmware-device.ts, written from hardware/PROTOCOL.md alone)
 * against a real gateway: anvil, the contracts deployed with `vigil chain deploy`, a registered
 * gateway, `vigil start` with `updates.enabled` reading a socat pty, firmware releases published
 * with `vigil release publish` / `vigil release approve` (updates README "Publishing and
 * approving"). Each device has its own HELLO profile, hence its own firmware target.
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Contract, JsonRpcProvider, NonceManager, Wallet, type EventLog } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { freePort, ptyPair, runVigil, stop, type PtyPair } from "../helpers/procs.ts";
import { spawnVigil, until as waitUntil, type VigilChild } from "../helpers/vigil-child.ts";
import { Device, SerialLink, T, hex8, type Frame } from "./device-client.ts";
import {
  Cable,
  FW_REASON,
  FW_RESULT,
  FW_STATE,
  FirmwareDevice,
  type FirmwareDeviceOptions,
} from "./firmware-device.ts";
import {
  KIND,
  RELEASES_ABI,
  REGISTRY_ABI,
  approve,
  buildFirmwareRelease,
  firmwareImage,
  grantReleaseRoles,
  propose,
} from "./release-publisher.ts";

const SITE = "plant-fw";
const GATEWAY = "gw-fw-indep";
const children: ChildProcess[] = [];
const fwDevices: FirmwareDevice[] = [];
let anvil: Anvil;
let pty: PtyPair;
let line: SerialLink;
let dir: string;
let deployment: string;
let httpPort: number;
let gatewayId: string;
let gateway: VigilChild;
let releases: Contract;
let roles: { manager: NonceManager; approver: NonceManager };

interface FwStatus {
  devices: {
    id: number;
    target: string;
    firmware: string;
    updating?: unknown;
    lastFailure?: { releaseId: string; code: string; reason: string };
  }[];
  counters: Record<string, unknown> & {
    installsByDevice?: Record<string, number>;
    rejected?: Record<string, number>;
    interrupted?: number;
  };
}
async function firmware(): Promise<FwStatus | undefined> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/api/updates`);
  return ((await r.json()) as { status: { firmware?: FwStatus } | null }).status?.firmware;
}

function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 20_000,
) {
  return waitUntil(what, f, ms, {
    everyMs: 50,
    detail: async () =>
      `${JSON.stringify(await firmware().catch(() => null))}\n${gateway.log().slice(-3000)}`,
  });
}

async function must(args: string[]): Promise<string> {
  const r = await runVigil(args);
  if (r.code !== 0) throw new Error(`vigil ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A firmware release as the updates README publishes one: `vigil release publish`, then `vigil
 * release approve` (`cli`); otherwise the independent publisher's transactions from other
 * accounts (the same record, release-publisher.test.ts; no CLI start-up per release).
 */
async function publish(target: string, image: Buffer, o: { cli?: boolean } = {}): Promise<number> {
  if (!o.cli) {
    const r = buildFirmwareRelease({ image, hardwareTarget: target, dir: join(dir, target) });
    const id = await propose(releases.connect(roles.manager) as Contract, r.input);
    expect((await approve(releases, id, roles.approver)).activated).toBe(true);
    return Number(id);
  }
  const file = join(dir, `${target}-${image.readUInt8(7)}.vgfw`);
  writeFileSync(file, image);
  const chain = ["--deployment", deployment, "--rpc", anvil.url];
  const out = await must(["release", "publish", "--kind", "firmware", "--target", target, "--file", file, ...chain, "--key-file", join(dir, "manager.key")]); // prettier-ignore
  const id = Number(/proposed release (\d+)/.exec(out)![1]);
  await must(["release", "approve", String(id), ...chain, "--key-file", join(dir, "approver.key")]);
  return id;
}

const body = (n: number, seed: number) =>
  Buffer.from(new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff));
const FACTORY = firmwareImage("1.0.0", body(1000, 1));

function device(id: number, profile: string, o: Partial<FirmwareDeviceOptions> = {}): FirmwareDevice {
  const d = new Device(new Cable(line), {
    deviceId: id,
    bootId: 1,
    profile,
    channels: [{ name: "vib_rms", unit: 1 }],
    clockUs: () => Date.now() * 1000,
    resendMs: 2000,
  });
  const fw = new FirmwareDevice(d, {
    primary: FACTORY,
    securityCounter: 1_000_000,
    slotSize: 64 * 1024,
    window: 4,
    maxChunk: 128,
    sample: [0.5],
    confirm: "after-ack",
    ...o,
  });
  fwDevices.push(fw);
  return fw;
}
const statuses = (fw: FirmwareDevice) => fw.sent.filter((f) => f.type === T.FW_STATUS);
const chunks = (fw: FirmwareDevice) =>
  fw.received.filter((f): f is Extract<Frame, { type: 0x11 }> => f.type === T.FW_CHUNK);
const DEVICES = [0xf01, 0xf02, 0xf03, 0xf04, 0xf05, 0xf06, 0xf07, 0xf08, 0xf09, 0xf0a, 0xf0b];
/** The status names a device by its id as a JSON number, and counts per device under its decimal key. */
const entry = (f: FwStatus | undefined, id: number) => f?.devices.find((x) => x.id === id);

beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
  dir = mkdtempSync(join(tmpdir(), "firmware-device-"));
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, pollingInterval: 50 });
  deployment = join(dir, "deployment.json");
  // M = 1: one approval activates (contracts README, `vigil chain deploy --threshold`).
  await must(["chain", "deploy", "--rpc", anvil.url, "--out", deployment, "--threshold", "1"]);
  const d = JSON.parse(readFileSync(deployment, "utf8")) as {
    contracts: Record<string, { address: string }>;
  };
  const admin = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0]!, provider));
  const registry = new Contract(d.contracts.VigilRegistry!.address, REGISTRY_ABI, admin);
  releases = new Contract(d.contracts.VigilReleases!.address, RELEASES_ABI, provider);
  const addr = (i: number) => new Wallet(ANVIL_DEV_KEYS[i]!).address;
  await grantReleaseRoles(registry, addr(1), [addr(2), addr(4)]);
  await grantReleaseRoles(registry, addr(3), []);
  roles = {
    manager: new NonceManager(new Wallet(ANVIL_DEV_KEYS[3]!, provider)),
    approver: new NonceManager(new Wallet(ANVIL_DEV_KEYS[4]!, provider)),
  };
  writeFileSync(join(dir, "manager.key"), `${ANVIL_DEV_KEYS[1]!}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "approver.key"), `${ANVIL_DEV_KEYS[2]!}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "sender.key"), `${ANVIL_DEV_KEYS[5]!}\n`, { mode: 0o600 });

  pty = await ptyPair(dir);
  httpPort = await freePort();
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: dir,
      site: SITE,
      attest: { gatewayName: GATEWAY },
      chain: { rpcUrl: anvil.url, deployment: "deployment.json", senderKeyFile: "sender.key" },
      registry: { schedule: "* * * * * *" },
      updates: { enabled: true, schedule: "0 0 1 1 *" },
      serial: [{ path: pty.b }],
      ingest: { allow: DEVICES.map(hex8), maxSkewMs: 3_600_000 },
      models: { enabled: false },
      mqtt: { embedded: { port: await freePort() }, readingsIntervalMs: null },
      http: { port: httpPort },
      log: { level: "info", statsIntervalMs: 0, format: "json" },
    }),
  );
  const env = { VIGIL_KEYSTORE_PASSPHRASE: "firmware-device-test" };
  const keys = await new Promise<string>((res, rej) => {
    const p = spawnVigil(children, ["keys", "init", "-c", config], env);
    p.on("close", (code) => (code === 0 ? res(p.log()) : rej(new Error(p.log()))));
  });
  const key = JSON.parse(keys) as { gatewayId: string; publicKey: string };
  gatewayId = key.gatewayId;
  await must(["chain", "grant-operator", "--deployment", deployment, "--rpc", anvil.url, "--site", SITE, "--account", addr(0)]); // prettier-ignore
  await must(["chain", "register-gateway", "--deployment", deployment, "--rpc", anvil.url, "--gateway-id", gatewayId, "--site", SITE, "--public-key", key.publicKey]); // prettier-ignore
  gateway = spawnVigil(children, ["start", "-c", config], env);
  await until("the firmware agent's first check", async () => {
    if (gateway.exitCode !== null) throw new Error(gateway.log());
    return (await firmware().catch(() => undefined))?.counters;
  });
  line = await SerialLink.open(pty.a);
}, 60_000);

afterAll(async () => {
  for (const f of fwDevices) {
    f.close();
    f.dev.close();
  }
  await line?.close();
  for (const p of children) await stop(p);
  await pty?.stop();
  await anvil?.stop();
});

describe("the firmware update exchange against vigil start", () => {
  it("a release is received, checked, installed at the reset and confirmed; the gateway reports the install on chain", async () => {
    const fw = device(0xf01, "fwi-a");
    fw.boot();
    const image = firmwareImage("1.1.0", body(20_000, 7));
    const id = await publish("fwi-a", image, { cli: true });
    await fw.until(() => fw.nv.result === FW_RESULT.INSTALLED, 30_000, "INSTALLED");
    // The device received every byte once, checked hash and header, reset into the trial and confirmed.
    expect(fw.boots).toEqual(["trial"]);
    expect(fw.primary.equals(image)).toBe(true);
    expect(fw.nv.securityCounter).toBe(1_001_000);
    const offsets = chunks(fw).map((c) => c.offset);
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(fw.maxAhead).toBeLessThanOrEqual(4); // the window it announced
    expect(chunks(fw).every((c) => c.data.length / 2 === 128 || c.offset + c.data.length / 2 === image.length)).toBe(true); // prettier-ignore
    const offer = fw.received.find((f) => f.type === T.FW_OFFER);
    expect(offer).toMatchObject({
      releaseId: id,
      firmware: { major: 1, minor: 1, patch: 0 },
      securityCounter: 1_001_000,
      imageSize: image.length,
      sha256: createHash("sha256").update(image).digest("hex"),
    });
    expect(statuses(fw).map((s) => [s.state, s.result])).toEqual([
      [FW_STATE.IDLE, FW_RESULT.NONE], // after the first HELLO
      [FW_STATE.RECEIVING, FW_RESULT.NONE], // the offer
      [FW_STATE.READY, FW_RESULT.NONE], // the last chunk
      [FW_STATE.TESTING, FW_RESULT.NONE], // after the trial's HELLO
      [FW_STATE.IDLE, FW_RESULT.INSTALLED], // confirmed
    ]);
    // What the operator sees: the device's firmware, the install counted; the chain: the report.
    const s = await until("the install in the status", async () => {
      const f = await firmware();
      return f?.counters.installsByDevice?.[String(0xf01)] === 1 && f;
    });
    expect(entry(s, 0xf01)).toMatchObject({ firmware: "1.1.0" });
    await until("the install report on chain", async () => {
      return (await releases.getFunction("installedRelease")(gatewayId, KIND.firmware)) === BigInt(id);
    });
    const reported = await releases.queryFilter(releases.filters.InstallReported!(gatewayId));
    expect(reported.map((e) => (e as EventLog).args[1])).toContain(BigInt(id));
  });

  it("a power cut mid-transfer: the device resumes at its last completed sector and the image installs", async () => {
    const fw = device(0xf02, "fwi-b");
    fw.boot();
    const image = firmwareImage("1.1.0", body(20_000, 9));
    let cutAt = -1;
    let cutChunks = 0;
    const cut = fw
      .until(() => fw.offset >= 10_000, 30_000, "10 kB received")
      .then(() => {
        cutAt = fw.nv.persistedOffset;
        cutChunks = chunks(fw).length;
        fw.powerCut();
      });
    await publish("fwi-b", image);
    await cut;
    expect(cutAt).toBe(8192); // two 4 KiB sectors complete
    await fw.until(() => fw.nv.result === FW_RESULT.INSTALLED, 30_000, "INSTALLED");
    expect(fw.boots).toEqual(["ok", "trial"]);
    expect(fw.primary.equals(image)).toBe(true);
    // After the cut nothing below the persisted sector is sent again.
    const after = chunks(fw)
      .slice(cutChunks)
      .map((c) => c.offset);
    expect(Math.min(...after)).toBe(8192);
    const resumed = statuses(fw).find((s) => s.state === FW_STATE.RECEIVING && s.nextOffset === 8192);
    expect(resumed).toBeDefined();
  });

  it("a rollback is refused: an image whose counter is below the device's is not sent (NOT_NEWER)", async () => {
    const fw = device(0xf03, "fwi-c", { securityCounter: 5_000_000 });
    fw.boot();
    const id = await publish("fwi-c", firmwareImage("1.1.0", body(4000, 3)));
    const f = await until("the refusal", async () => entry(await firmware(), 0xf03)?.lastFailure);
    expect(f).toMatchObject({ releaseId: String(id), code: "NOT_NEWER" });
    expect(fw.received.filter((x) => x.type === T.FW_OFFER || x.type === T.FW_CHUNK)).toEqual([]);
    expect(fw.running()).toEqual({ major: 1, minor: 0, patch: 0 });
  });

  it("a device whose FW_STATUS comes late is offered the release before its counter is known, and refuses it itself", async () => {
    // Same target and the same high counter as above, but its FW_STATUS follows its HELLO after
    // 3 s: the gateway's offer at the HELLO comes first (the open question), so the refusal is the
    // device's own (OLDER_VERSION), not the gateway's NOT_NEWER.
    const fw = device(0xf04, "fwi-c", { securityCounter: 5_000_000, statusAfterHelloMs: 3000 });
    fw.boot();
    const f = await until("the refusal", async () => entry(await firmware(), 0xf04)?.lastFailure);
    expect(fw.received.map((x) => x.type)).toEqual([T.FW_OFFER]);
    expect(statuses(fw)).toMatchObject([{ state: FW_STATE.IDLE, result: FW_RESULT.REFUSED, reason: FW_REASON.OLDER_VERSION }]); // prettier-ignore
    expect(f).toMatchObject({ code: "FW_REFUSED" });
    expect(f.reason).toMatch(/OLDER_VERSION/);
    expect(fw.nv.securityCounter).toBe(5_000_000);
  });

  it("a device that boots after the release is active gets it at its HELLO, its FW_STATUS crossing the offer", async () => {
    // Release 1 of this target is Active since the first test. This device confirms with
    // FW_STATUS only: its trial's boot sent the HELLO with the new version.
    const fw = device(0xf06, "fwi-a", { helloAtConfirm: false });
    fw.boot();
    await fw.until(() => fw.nv.result === FW_RESULT.INSTALLED, 30_000, "INSTALLED");
    expect(fw.boots).toEqual(["trial"]);
    expect((fw.dev.link as Cable).sent.filter((b) => b[1] === T.HELLO)).toHaveLength(2);
    expect(fw.running()).toEqual({ major: 1, minor: 1, patch: 0 });
    await until("the install counted", async () => (await firmware())?.counters.installsByDevice?.[String(0xf06)] === 1); // prettier-ignore
  });

  it("a cable pulled mid-transfer: the gateway gives up, and at the reconnect's HELLO it resumes where the device is", async () => {
    const fw = device(0xf07, "fwi-e");
    const cable = fw.dev.link as Cable;
    fw.boot();
    const image = firmwareImage("1.1.0", body(12_000, 11));
    const pulled = fw
      .until(() => fw.offset >= 6000, 30_000, "6 kB received")
      .then(() => {
        cable.plugged = false;
        return { at: fw.offset, chunks: chunks(fw).length, offers: fw.received.filter((x) => x.type === T.FW_OFFER).length }; // prettier-ignore
      });
    const id = await publish("fwi-e", image);
    const p = await pulled;
    // PROTOCOL.md gateway rule 3: 8 rewinds of 1.5 s without progress, then TOO_MANY_RETRIES:
    // the transfer is interrupted (updates README), not failed.
    await until("the transfer interrupted", async () => ((await firmware())?.counters.interrupted ?? 0) >= 1, 25_000); // prettier-ignore
    expect(entry(await firmware(), 0xf07)?.lastFailure).toBeUndefined();
    cable.plugged = true;
    fw.reconnect();
    await fw.until(() => fw.nv.result === FW_RESULT.INSTALLED, 30_000, "INSTALLED");
    expect(fw.primary.equals(image)).toBe(true);
    const offers = fw.received.filter((x) => x.type === T.FW_OFFER);
    expect(offers.length).toBe(p.offers + 1); // the resume query
    expect(offers.at(-1)).toMatchObject({ releaseId: id });
    // Nothing the device had written is sent again.
    const after = chunks(fw)
      .slice(p.chunks)
      .map((c) => c.offset);
    expect(Math.min(...after)).toBe(p.at);
  }, 60_000);

  it("a trial image that never confirms is reverted at the next reset (REVERTED / NOT_CONFIRMED)", async () => {
    const fw = device(0xf05, "fwi-d", { confirm: "never", trialResetMs: 300 });
    fw.boot();
    const id = await publish("fwi-d", firmwareImage("1.1.0", body(6000, 5)));
    await fw.until(() => fw.nv.result === FW_RESULT.REVERTED, 30_000, "REVERTED");
    expect(fw.boots).toEqual(["trial", "reverted"]);
    expect(fw.nv.reason).toBe(FW_REASON.NOT_CONFIRMED);
    expect(fw.running()).toEqual({ major: 1, minor: 0, patch: 0 });
    expect(fw.primary.equals(FACTORY)).toBe(true);
    const f = await until("the failure", async () => entry(await firmware(), 0xf05)?.lastFailure);
    expect(f).toMatchObject({ releaseId: String(id) });
    expect(`${f.code} ${f.reason}`).toMatch(/REVERTED/);
    expect(`${f.code} ${f.reason}`).toMatch(/NOT_CONFIRMED/);
  });

  it("a release activated during another's trial is not offered then (no BUSY); after the install it is offered at the next HELLO", async () => {
    const fw = device(0xf08, "fwi-f", { confirm: "manual" });
    fw.boot();
    const a = await publish("fwi-f", firmwareImage("1.1.0", body(3000, 13)));
    await fw.until(() => fw.nv.state === FW_STATE.TESTING, 30_000, "the trial of A");
    const checks = (await firmware())!.counters.checks as number;
    const b = await publish("fwi-f", firmwareImage("1.2.0", body(3000, 17)));
    await until("the check B's activation runs", async () => ((await firmware())?.counters.checks as number) > checks); // prettier-ignore
    // A transfer under way is not cut: B is not offered to the device holding A's trial.
    expect(fw.received.filter((x) => x.type === T.FW_OFFER).map((x) => x.releaseId)).toEqual([a]);
    fw.confirm(); // HELLO and FW_STATUS INSTALLED
    // The confirmation's HELLO comes while A's transfer is still under way: it offers nothing. A
    // HELLO once the status no longer names A as `updating` does.
    await until("A's transfer ended", async () => {
      const f = await firmware();
      return f?.counters.installsByDevice?.[String(0xf08)] === 1 && entry(f, 0xf08)?.updating === undefined;
    });
    fw.reconnect();
    await fw.until(() => fw.nv.state === FW_STATE.TESTING, 20_000, "the trial of B");
    fw.confirm();
    await until("B installed", async () => (await firmware())?.counters.installsByDevice?.[String(0xf08)] === 2); // prettier-ignore
    expect(fw.received.filter((x) => x.type === T.FW_OFFER).map((x) => x.releaseId)).toEqual([a, b]);
    expect(fw.running()).toEqual({ major: 1, minor: 2, patch: 0 });
  });

  it("a read-back failure rewinds to the sector start (WRITE_FAILED) and the image installs; a third one refuses it (FLASH_ERROR)", async () => {
    const ok = device(0xf09, "fwi-g", { writeFaultsAt: [5120] });
    const bad = device(0xf0a, "fwi-h", { writeFaultsAt: [5120, 5120, 5120] });
    ok.boot();
    bad.boot();
    const image = firmwareImage("1.1.0", body(8000, 19));
    await publish("fwi-g", image);
    const id = await publish("fwi-h", image);
    await ok.until(() => ok.nv.result === FW_RESULT.INSTALLED, 20_000, "INSTALLED");
    expect(ok.primary.equals(image)).toBe(true);
    const acks = ok.sent.filter((f): f is Extract<Frame, { type: 0x14 }> => f.type === T.FW_CHUNK_ACK);
    expect(acks.filter((a) => a.status === 2).map((a) => a.nextOffset)).toEqual([4096]);
    // The gateway went back to the device's next_offset: the sector was sent again from its start.
    const offsets = chunks(ok).map((c) => c.offset);
    expect(offsets.filter((o) => o === 4096)).toHaveLength(2);
    await bad.until(() => bad.nv.result === FW_RESULT.REFUSED, 20_000, "REFUSED");
    expect(bad.nv.reason).toBe(FW_REASON.FLASH_ERROR);
    const f = await until("the refusal", async () => entry(await firmware(), 0xf0a)?.lastFailure);
    expect(f).toMatchObject({ releaseId: String(id), code: "FW_REFUSED" });
    expect(f.reason).toMatch(/FLASH_ERROR/);
  });

  it("an INSTALLED naming another version than the image's fails the transfer (PROTOCOL)", async () => {
    const fw = device(0xf0b, "fwi-i", { installedClaims: { major: 1, minor: 0, patch: 9 } });
    fw.boot();
    const id = await publish("fwi-i", firmwareImage("1.1.0", body(3000, 23)));
    await fw.until(() => fw.nv.result === FW_RESULT.INSTALLED, 20_000, "INSTALLED");
    const f = await until("the failure", async () => entry(await firmware(), 0xf0b)?.lastFailure);
    expect(f).toMatchObject({ releaseId: String(id), code: "FW_PROTOCOL" });
    expect((await firmware())!.counters.installsByDevice?.[String(0xf0b)]).toBeUndefined();
  });

  it("PROTOCOL.md Conventions: a device id's text form in logs is 8 hex digits (the install line)", () => {
    expect(gateway.log()).toMatch(/device [0-9a-f]{8} runs firmware release/);
    expect(gateway.log()).not.toMatch(/device \d{1,7} runs firmware release/);
  });
});
