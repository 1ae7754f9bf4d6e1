/**
 * The independent release publisher (release-publisher.ts, written from the updates and contracts
 * READMEs alone) against a real gateway: anvil, the contracts deployed with `vigil chain deploy`,
 * a registered gateway (`vigil keys init`, `vigil chain register-gateway`), `vigil start` with
 * `updates.enabled` as the updates README configures it, fed C-MAPSS engines by `vigil sim`.
 * The gateway installs the independently published model release, reports it on chain and over
 * HTTP, and then a release of the same model file that changes only the manifest; releases that
 * break a documented rule are refused with the documented code.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Contract, JsonRpcProvider, NonceManager, Wallet, type EventLog } from "ethers";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { freePort, runVigil, stop } from "../helpers/procs.ts";
import { spawnVigil, until as waitUntil, type VigilChild } from "../helpers/vigil-child.ts";
import {
  KIND,
  REGISTRY_ABI,
  RELEASES_ABI,
  STATUS,
  approve,
  buildFirmwareRelease,
  buildModelRelease,
  cidV1,
  firmwareImage,
  grantReleaseRoles,
  mined,
  propose,
  publishAndApprove,
  targetId,
} from "./release-publisher.ts";

const SITE = "plant-r";
const GATEWAY = "gw-releases";
const PROFILE = "cmapss-fd001";
const children: ChildProcess[] = [];
let anvil: Anvil;
let provider: JsonRpcProvider;
let releases: Contract;
let dir: string;
let httpPort: number;
let mqttPort: number;
let gatewayId: string;
let gateway: ChildProcess & { log: () => string };
const wallet = (i: number) => new NonceManager(new Wallet(ANVIL_DEV_KEYS[i]!, provider));
let manager: NonceManager;
let approvers: NonceManager[];

function vigil(args: string[], env: NodeJS.ProcessEnv = {}): VigilChild {
  return spawnVigil(children, args, env);
}

/** Waits for `f`; on a timeout, says so with the update status and the children's last output. */
function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 30_000,
): Promise<T> {
  return waitUntil(what, f, ms, {
    everyMs: 100,
    detail: async () =>
      `${JSON.stringify(await updates().catch(() => null))}\n${children.map((c) => (c as VigilChild).log().slice(-1500)).join("\n---\n")}`,
  });
}

async function must(args: string[]): Promise<string> {
  const r = await runVigil(args);
  if (r.code !== 0) throw new Error(`vigil ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

interface Failure {
  releaseId: string | number;
  code: string;
  reason: string;
}
interface UpdatesStatus {
  enabled: boolean;
  status: {
    model: {
      state: string;
      lastInstall?: { releaseId: string | number; version: string; sha256: string; reported: boolean };
      lastFailure?: Failure;
      counters: { checks: number; installs: number; reports: number; rejected: Record<string, number> };
    };
  } | null;
}
async function updates(): Promise<UpdatesStatus> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/api/updates`);
  return (await r.json()) as UpdatesStatus;
}

// The shipped FD001 model is live (float32); the releases carry its int8 variant, other bytes.
const onnx = readFileSync("models/cmapss/fd001.int8.onnx");
const INT8 = { name: "fd001.int8.onnx", precision: "int8" };
const manifest = JSON.parse(readFileSync("models/cmapss/fd001.manifest.json", "utf8")) as Parameters<
  typeof buildModelRelease
>[0]["manifest"];

beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
  dir = mkdtempSync(join(tmpdir(), "release-publisher-"));
  provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, pollingInterval: 50 });
  const deployment = join(dir, "deployment.json");
  await must(["chain", "deploy", "--rpc", anvil.url, "--out", deployment]);
  const d = JSON.parse(readFileSync(deployment, "utf8")) as {
    contracts: Record<string, { address: string }>;
  };
  const admin = wallet(0);
  const registry = new Contract(d.contracts.VigilRegistry!.address, REGISTRY_ABI, admin);
  releases = new Contract(d.contracts.VigilReleases!.address, RELEASES_ABI, admin);
  manager = wallet(1);
  approvers = [wallet(2), wallet(3), wallet(4)];
  // The manager also holds the approver role (roles are separate grants): it still cannot
  // approve its own proposals.
  await grantReleaseRoles(
    registry,
    await manager.getAddress(),
    await Promise.all([manager, ...approvers].map((a) => a.getAddress())),
  );
  await mined(releases.getFunction("setApprovalThreshold")(2)); // M = 2 of N = 4

  // The gateway: key, registration, config (updates README "What the gateway does").
  httpPort = await freePort();
  const config = join(dir, "config.json");
  writeFileSync(join(dir, "sender.key"), `${ANVIL_DEV_KEYS[5]!}\n`, { mode: 0o600 });
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: dir,
      site: SITE,
      attest: { gatewayName: GATEWAY },
      chain: { rpcUrl: anvil.url, deployment: "deployment.json", senderKeyFile: "sender.key" },
      registry: { schedule: "* * * * * *" },
      // maxCostFactor 10 as the demo's: the int8 model costs up to 3.5× the float one in shadow.
      updates: {
        enabled: true,
        shadowWindows: 10,
        shadowMaxMs: 20_000,
        maxCostFactor: 10,
        schedule: "0 0 1 1 *",
      },
      mqtt: { embedded: { port: await freePort() } },
      http: { port: httpPort },
      log: { level: "info", statsIntervalMs: 0, format: "json" },
    }),
  );
  const env = { VIGIL_KEYSTORE_PASSPHRASE: "release-publisher-test" };
  const keys = await new Promise<string>((res, rej) => {
    const p = vigil(["keys", "init", "-c", config], env);
    p.on("close", (code) => (code === 0 ? res(p.log()) : rej(new Error(p.log()))));
  });
  const key = JSON.parse(keys) as { gatewayId: string; publicKey: string };
  gatewayId = key.gatewayId;
  const adminAddress = await admin.getAddress();
  await must(["chain", "grant-operator", "--deployment", deployment, "--rpc", anvil.url, "--site", SITE, "--account", adminAddress]); // prettier-ignore
  await must(["chain", "register-gateway", "--deployment", deployment, "--rpc", anvil.url, "--gateway-id", gatewayId, "--site", SITE, "--public-key", key.publicKey]); // prettier-ignore

  gateway = vigil(["start", "-c", config], env);
  await until("the gateway's HTTP endpoint", async () => {
    if (gateway.exitCode !== null) throw new Error(gateway.log());
    return (await updates().catch(() => undefined))?.status?.model.counters.checks;
  });
  mqttPort = (JSON.parse(readFileSync(config, "utf8")) as { mqtt: { embedded: { port: number } } }).mqtt
    .embedded.port;
}, 90_000);

afterAll(async () => {
  for (const p of children) await stop(p);
  await anvil?.stop();
});

it("the contract enforces the documented approval rules on an independently built release", async () => {
  const r = buildModelRelease({
    onnx,
    file: INT8,
    manifest,
    version: "3.0.5",
    profile: PROFILE,
    dir: join(dir, "r-rules"),
  });
  // Only a release manager proposes (MissingRole).
  await expect(propose(releases.connect(approvers[0]!) as Contract, r.input)).rejects.toThrow(/MissingRole/);
  const m = releases.connect(manager) as Contract;
  const id = await propose(m, r.input);
  // The proposer cannot approve its own release (SelfApproval) …
  await expect(approve(releases, id, manager)).rejects.toThrow(/SelfApproval/);
  // … one approval of M = 2 leaves it Proposed, and activate() says why.
  expect(await approve(releases, id, approvers[0]!)).toEqual({ approvals: 1, activated: false });
  await expect(approve(releases, id, approvers[0]!)).rejects.toThrow(/AlreadyApproved/);
  expect((await releases.getFunction("getRelease")(id)).status).toBe(BigInt(STATUS.proposed));
  await expect(releases.getFunction("activate").staticCall(id)).rejects.toThrow(/BelowThreshold/);
  expect(await releases.getFunction("activeRelease")(KIND.model, r.input.target)).toBe(0n);
  // Versions only go up per (kind, target).
  await expect(propose(m, { ...r.input })).rejects.toThrow(/VersionNotIncreasing/);
  // Revoke the proposal: its version stays consumed, no current release.
  await mined(m.getFunction("revoke")(id, "superseded"));
}, 60_000);

it("a release with a wrong content hash is refused HASH_MISMATCH, then a correct one installs and is reported, then one that changes only the manifest", async () => {
  const m = releases.connect(manager) as Contract;
  const bad = buildModelRelease({
    onnx, file: INT8, manifest, version: "3.1.0", profile: PROFILE, dir: join(dir, "r-bad"),
    tamper: { contentHash: `0x${"ab".repeat(32)}` },
  }); // prettier-ignore
  const b = await publishAndApprove(m, bad.input, approvers);
  expect(b.steps.map((s) => s.activated)).toEqual([false, true]);
  // The registry watch sees ReleaseActivated and runs a check (updates README "When it checks").
  const refused = await until("the refusal", async () => {
    const f = (await updates()).status?.model.lastFailure;
    return f && String(f.releaseId) === String(b.id) && f;
  });
  expect(refused.code).toBe("HASH_MISMATCH");
  expect(refused.reason).toMatch(/wrong bytes from its sources, attempt 1 of 8/);

  // Live windows for the shadow phase: C-MAPSS engines streaming their cycles.
  vigil(["sim", "--mqtt", `mqtt://127.0.0.1:${mqttPort}`, "--profile", "cmapss", "--devices", "4", "--rate", "20"]); // prettier-ignore
  const good = buildModelRelease({
    onnx,
    file: INT8,
    manifest,
    version: "3.2.0",
    profile: PROFILE,
    dir: join(dir, "r-good"),
  });
  const g = await publishAndApprove(m, good.input, approvers);
  expect(g.steps.at(-1)!.activated).toBe(true);
  const installed = await until(
    "the install",
    async () => {
      const s = (await updates()).status?.model;
      return (
        s?.lastInstall && String(s.lastInstall.releaseId) === String(g.id) && s.lastInstall.reported && s
      );
    },
    60_000,
  );
  // updates README "Watching an update": the chain's version number and ids as decimal strings.
  expect(installed.lastInstall).toMatchObject({
    releaseId: String(g.id),
    version: String(good.input.version),
    sha256: good.input.contentHash.slice(2),
  });
  expect(installed.counters.rejected.HASH_MISMATCH).toBe(1);
  expect(gateway.log()).toContain(`model release ${g.id} in shadow`);
  expect(gateway.log()).toContain(`model release ${g.id} installed: cmapss-fd001-rul 3.2.0 is live`);
  expect(await releases.getFunction("installedRelease")(gatewayId, KIND.model)).toBe(g.id);
  const reported = await releases.queryFilter(releases.filters.InstallReported!(gatewayId));
  expect(reported.map((e) => (e as EventLog).args.slice(1, 4))).toEqual([[g.id, 0n, good.input.version]]);
  const cli = await runVigil(["update", "status", "--url", `http://127.0.0.1:${httpPort}`]);
  expect(cli.code, cli.stderr).toBe(0);
  expect(cli.stdout).toContain(String(g.id));

  // A release that changes only the manifest (updates README step 1): the same ONNX file under a
  // 3.3.0 manifest installs like any release, shadow and report included.
  const same = buildModelRelease({ onnx, file: INT8, manifest, version: "3.3.0", profile: PROFILE, dir: join(dir, "r-same") }); // prettier-ignore
  const sm = await publishAndApprove(m, same.input, approvers);
  expect(sm.steps.at(-1)!.activated).toBe(true);
  const manifestOnly = await until(
    "the manifest-only install",
    async () => {
      const s = (await updates()).status?.model;
      return (
        s?.lastInstall && String(s.lastInstall.releaseId) === String(sm.id) && s.lastInstall.reported && s
      );
    },
    60_000,
  );
  expect(manifestOnly.lastInstall).toMatchObject({
    version: String(same.input.version),
    sha256: good.input.contentHash.slice(2),
  });
  expect(manifestOnly.counters.rejected).toEqual(installed.counters.rejected);
  expect(gateway.log()).toContain(
    `model release ${sm.id} installed: cmapss-fd001-rul 3.3.0 is live (same model file, new manifest)`,
  );
  expect(await releases.getFunction("installedRelease")(gatewayId, KIND.model)).toBe(sm.id);

  // Not seen at all (updates README step 1): the release already live, and one with fewer than
  // M approvals.
  const before = (await updates()).status!.model;
  const oneOnly = buildModelRelease({
    onnx: readFileSync("models/cmapss/fd001.onnx"), manifest, version: "3.4.0", profile: PROFILE,
    dir: join(dir, "r-one"),
  }); // prettier-ignore
  const one = await propose(m, oneOnly.input);
  expect(await approve(releases, one, approvers[0]!)).toEqual({ approvals: 1, activated: false });
  const checked = await runVigil(["update", "check", "--url", `http://127.0.0.1:${httpPort}`, "--json"]);
  expect(checked.code, checked.stderr).toBe(0);
  const after = (JSON.parse(checked.stdout) as UpdatesStatus).status!.model;
  expect(after.counters.checks).toBeGreaterThan(before.counters.checks);
  expect(after.counters.installs).toBe(before.counters.installs);
  expect(after.lastInstall!.releaseId).toBe(String(sm.id));
  expect(after.lastFailure).toEqual(before.lastFailure);
  expect(after.counters.rejected).toEqual(before.counters.rejected);

  // A manifest of another version than the release's: MANIFEST_MISMATCH, remembered.
  const mixed = buildModelRelease({
    onnx: readFileSync("models/cmapss/fd001.onnx"), manifest, version: "3.5.0", profile: PROFILE,
    dir: join(dir, "r-mixed"), tamper: { manifestVersion: "3.5.1" },
  }); // prettier-ignore
  const x = await publishAndApprove(m, mixed.input, approvers);
  const f = await until("the mismatch refusal", async () => {
    const s = (await updates()).status?.model.lastFailure;
    return s && String(s.releaseId) === String(x.id) && s;
  });
  expect(f.code).toBe("MANIFEST_MISMATCH");
  expect(String((await updates()).status!.model.lastInstall!.releaseId)).toBe(String(sm.id));
}, 150_000);

it("a firmware release built from PROTOCOL.md's image layout is recorded as `vigil release publish` records the same image", async () => {
  const image = firmwareImage("1.2.3", Buffer.from("independent firmware body\n".repeat(40)));
  const mine = buildFirmwareRelease({ image, hardwareTarget: "fw-indep", dir: join(dir, "fw") });
  const m = releases.connect(manager) as Contract;
  const a = await propose(m, mine.input);
  const keyFile = join(dir, "manager.key");
  writeFileSync(keyFile, `${ANVIL_DEV_KEYS[1]!}\n`, { mode: 0o600 });
  const ours = await runVigil([
    "release", "publish", "--kind", "firmware", "--target", "fw-vigil", "--file", mine.path,
    "--uri", mine.input.uris[0]!, "--deployment", join(dir, "deployment.json"), "--rpc", anvil.url,
    "--key-file", keyFile,
  ]); // prettier-ignore
  expect(ours.code, ours.stderr).toBe(0);
  // The CID it prints (Kubo's `ipfs add --cid-version=1`) is the publisher's.
  expect(ours.stdout).toContain(`cid       ${cidV1(image)}`);
  const b = BigInt(/proposed release (\d+)/.exec(ours.stdout)![1]!);
  const record = async (id: bigint) => {
    const r = (await releases.getFunction("getRelease")(id)) as {
      kind: bigint;
      version: bigint;
      size: bigint;
      target: string;
      contentHash: string;
      trainingDataHash: string;
      uris: string[];
      metrics: string;
    };
    return {
      kind: r.kind,
      version: r.version,
      size: r.size,
      contentHash: r.contentHash,
      trainingDataHash: r.trainingDataHash,
      uris: [...r.uris],
      metrics: JSON.parse(r.metrics) as unknown,
      target: r.target,
    };
  };
  const [x, y] = [await record(a), await record(b)];
  expect(y.target).toBe(targetId("firmware", "fw-vigil"));
  expect({ ...x, target: undefined }).toEqual({ ...y, target: undefined });
  expect(x.version).toBe(1_002_003n);
});
