/**
 * Shared rig of the update tests: a local anvil with the registry (threshold 2) and a release
 * manager + three approvers (2-of-3), an inference loop fed C-MAPSS frames, and helpers that
 * lay out and publish model releases.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { loadKeystore } from "../../gateway/src/attest/keystore.ts";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import type { ReleaseInput } from "../../gateway/src/chain/client.ts";
import type { FrameRecord } from "../../gateway/src/core/records.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { storeHistory } from "../../gateway/src/infer/history.ts";
import { InferenceLoop, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { decodeFrame, encodeFrame, FrameType, type DataFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { planRelease } from "../../gateway/src/cli/release.ts";
import { variantManifest } from "../../gateway/src/updates/model-check.ts";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { CMAPSS_DIR, T0_US, fd001Manifest, row } from "../infer/helpers.ts";

export const GATEWAY_ID = `0x${"ab".repeat(32)}` as Hex;
export const DEVICES = [21, 22, 23];

export interface ChainRig {
  chain: LocalChain;
  dataDir: string;
  admin: EthersRegistryClient;
  manager: EthersRegistryClient;
  approvers: EthersRegistryClient[];
  /** A read-only client for the gateway (also sends install reports, paid by the sender key). */
  gateway: EthersRegistryClient;
  sign: (digest: Hex) => Hex;
  close(): Promise<void>;
}

async function client(chain: LocalChain, key: string): Promise<EthersRegistryClient> {
  return EthersRegistryClient.connect({
    rpcUrl: chain.anvil.url,
    privateKey: key,
    registry: chain.deployment.contracts.VigilRegistry.address,
    releases: chain.deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });
}

export async function chainRig(): Promise<ChainRig> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-upd-"));
  const chain = await localChain({ dataDir, gatewayId: GATEWAY_ID });
  const [admin, manager, a1, a2, a3, gateway] = await Promise.all(
    [0, 2, 3, 4, 5, 1].map((i) => client(chain, ANVIL_DEV_KEYS[i]!)),
  );
  await admin!.grantRole("releaseManager", manager!.account);
  for (const a of [a1!, a2!, a3!]) await admin!.grantRole("releaseApprover", a.account);
  const signer = await loadKeystore(join(dataDir, "gateway.key"), chain.passphrase);
  const sign = (d: Hex): Hex => signer.sign(d);
  return {
    chain,
    dataDir,
    admin: admin!,
    manager: manager!,
    approvers: [a1!, a2!, a3!],
    gateway: gateway!,
    sign,
    close: async () => {
      for (const c of [admin, manager, a1, a2, a3, gateway]) await c!.close();
      await chain.stop();
    },
  };
}

/**
 * A release folder holding FD001's int8 (or float) ONNX under a manifest of its own, serving
 * `profile` at `version`; `edit` changes the manifest before it is written.
 */
export function releaseFolder(o: {
  profile: string;
  version: string;
  precision?: "int8" | "float32";
  edit?: (m: ModelManifest) => void;
}): { file: string; manifest: string } {
  const dir = mkdtempSync(join(tmpdir(), "vigil-rel-"));
  const base = fd001Manifest();
  const m = o.precision === "float32" ? structuredClone(base) : variantManifest(base, "int8");
  delete m.model.variants;
  delete m.model.prefer;
  m.version = o.version;
  m.devices.profiles = [o.profile];
  o.edit?.(m);
  const file = join(dir, m.model.file);
  copyFileSync(join(CMAPSS_DIR, o.precision === "float32" ? "fd001.onnx" : "fd001.int8.onnx"), file);
  const manifest = join(dir, `${m.name}.manifest.json`);
  writeFileSync(manifest, JSON.stringify(m, null, 2));
  return { file, manifest };
}

/** The live model: FD001 float, serving `profile`, at `version`. */
export async function liveModel(profile: string, version = "3.0.0"): Promise<LoadedModel> {
  const f = releaseFolder({ profile, version, precision: "float32" });
  return loadModel(f.manifest);
}

/** Proposes a release (as `planRelease` builds it, optionally edited) and returns its id. */
export async function propose(
  r: ChainRig,
  o: { profile: string; file: string; manifest?: string; uris?: string[]; edit?: (i: ReleaseInput) => void },
): Promise<bigint> {
  const plan = await planRelease({
    kind: "model",
    target: o.profile,
    file: o.file,
    manifest: o.manifest,
    uris: o.uris,
  });
  o.edit?.(plan.input);
  return (await r.manager.proposeRelease(plan.input)).releaseId;
}

export async function approve(r: ChainRig, id: bigint, n = 2): Promise<void> {
  for (const a of r.approvers.slice(0, n)) await a.approveRelease(id);
}

let units: CmapssUnit[] | undefined;

/** An inference loop over `live` with a frame feeder (three C-MAPSS units). */
export class LoopRig {
  readonly store = new MemoryFrameStore();
  readonly results: InferenceResult[] = [];
  readonly loop: InferenceLoop;
  readonly devices: number[];
  step = 0;

  constructor(live: LoadedModel, profile: string, devices = DEVICES) {
    this.devices = devices;
    units ??= loadCmapss(join(REPO_ROOT, "models", "data", "cmapss", "train_FD001.txt.gz")).sort(
      (a, b) => b.cycles - a.cycles,
    );
    this.loop = new InferenceLoop({
      registry: { models: [live] },
      profileOf: () => profile,
      history: storeHistory(this.store),
      onResult: (res) => this.results.push(res),
    });
  }

  /** One frame per device, stored then fed; then (unless `tick` is false) one loop tick. */
  async feed(tick = true): Promise<void> {
    if (this.step === 0) await this.store.open();
    const s = this.step++;
    for (const [i, id] of this.devices.entries()) {
      const u = units![i % units!.length]!;
      const values = Float32Array.from(row(u, s % u.cycles));
      const raw = encodeFrame({
        type: FrameType.Data,
        deviceId: id,
        seq: s,
        timestampUs: T0_US + s * 1000,
        flags: 0,
        values,
      });
      const rec: FrameRecord = {
        deviceId: id,
        seq: s,
        receivedUs: T0_US + s * 1000,
        timestampUs: T0_US + s * 1000,
        raw,
      };
      await this.store.append(rec);
      this.loop.onFrame(rec, decodeFrame(raw) as DataFrame);
    }
    await this.loop.warmed();
    if (tick) await this.loop.tick();
  }

  /** Feeds frames until `p` settles (the agent's shadow phase needs live windows). */
  async feedUntil<T>(p: Promise<T>): Promise<T> {
    let done = false;
    const q = p.finally(() => (done = true));
    while (!done) await this.feed();
    return q;
  }

  async close(): Promise<void> {
    await this.loop.close();
  }
}

export function read(path: string): Buffer {
  return readFileSync(path);
}

export function mkdir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

/** Updates on with the model agent only: checks only when a test asks (a yearly schedule), a short shadow. */
export const UPDATES = {
  enabled: true,
  schedule: "0 0 1 1 *",
  shadowWindows: 10,
  maxCostFactor: 50,
  firmware: false,
};

export const PROFILE = "cmapss-v2"; // what the simulator's FD001 engines announce

/** A gateway (Runtime, embedded broker, HTTP endpoint on a free port) on the rig's chain serving FD001 float for PROFILE; `extra` overrides config blocks. */
export function gateway(
  rig: ChainRig,
  extra: Record<string, unknown> = {},
  rpcUrl = rig.chain.anvil.url,
): Runtime {
  const live = releaseFolder({ profile: PROFILE, version: "3.0.0", precision: "float32" });
  return new Runtime({
    config: resolveConfig({
      dataDir: rig.dataDir,
      site: "s1",
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      attest: { gatewayId: GATEWAY_ID, gatewayName: "g1", batchIntervalMs: 1000 },
      chain: { rpcUrl, deployment: "deployment.json", confirmations: 1 },
      store: { minFreeBytes: 0, reserveBytes: 0 },
      models: { dir: dirname(live.manifest) },
      log: { statsIntervalMs: 0 },
      ...extra,
    }),
    passphrase: rig.chain.passphrase,
    senderKey: rig.chain.senderKey,
  });
}

export function engines(url: string, durationS: number): Simulator {
  return new Simulator({
    transport: new MqttTransport({ url, clientId: "engines" }),
    devices: 3,
    profile: "cmapss",
    rate: 50,
    durationS,
    seed: 4,
  });
}
