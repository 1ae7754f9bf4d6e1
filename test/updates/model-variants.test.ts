/**
 * A model release is one ONNX file: the chain approves its sha256 (`contentHash`) and pins the
 * manifest's sha256 (`metrics`). A manifest's `model.variants` / `model.prefer` (e.g. int8 on one
 * CPU, float on another) must not make the gateway load any other file:
 * - a variant file name that leaves the release's folder ("../…") is refused (MANIFEST_INVALID),
 *   also by `vigil release publish` (planRelease);
 * - a variant the manifest prefers for this CPU is not part of the release: the gateway runs the
 *   release's own file (the manifest's `model.file`), at install and after a restart.
 * The release records are built by hand (as a publisher bypassing the CLI could) in a fake
 * ReleaseSource; the inference loop and the ONNX models are real.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { planRelease } from "../../gateway/src/cli/release.ts";
import { MemoryUpdateState, ModelUpdateAgent } from "../../gateway/src/updates/model-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";
import { CMAPSS_DIR } from "../infer/helpers.ts";
import { LoopRig, liveModel, releaseFolder } from "./rig.ts";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const FLOAT = join(CMAPSS_DIR, "fd001.onnx");
const INT8 = join(CMAPSS_DIR, "fd001.int8.onnx");

/**
 * Release 1 of `profile`: the int8 FD001 file under a manifest that `edit` changes (the live model
 * is the float one, as the variants below are).
 */
function release(
  profile: string,
  edit: (m: ModelManifest) => void,
): { rec: ReleaseRecord; manifest: string } {
  const rel = releaseFolder({ profile, version: "3.1.0", edit });
  const bytes = readFileSync(rel.file);
  const mBytes = readFileSync(rel.manifest);
  const rec: ReleaseRecord = {
    id: 1n,
    kind: "model",
    target: targetId("model", profile),
    version: 3_001_000n,
    contentHash: `0x${sha(bytes)}` as Hex,
    size: BigInt(bytes.length),
    trainingDataHash: `0x${"0".repeat(64)}` as Hex,
    uris: [pathToFileURL(rel.file).href],
    metrics: JSON.stringify({
      manifest: {
        file: basename(rel.manifest),
        sha256: sha(mBytes),
        cid: "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
      },
    }),
    status: "active",
    approvals: 2,
    proposer: `0x${"11".repeat(20)}` as Hex,
  };
  return { rec, manifest: rel.manifest };
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

async function setup(
  profile: string,
  rec: ReleaseRecord,
  o: { state?: MemoryUpdateState; dir?: string } = {},
) {
  const live = await liveModel(profile, "3.0.0");
  const rig = new LoopRig(live, profile);
  for (let i = 0; i < 5; i++) await rig.feed();
  const state = o.state ?? new MemoryUpdateState();
  const dir = o.dir ?? join(mkdtempSync(join(tmpdir(), "vigil-upd-variants-")), "updates");
  const agent = new ModelUpdateAgent({
    loop: rig.loop,
    releases: {
      activeRelease: async (_k, target) => (target === rec.target ? structuredClone(rec) : null),
      getRelease: async (id) => (id === rec.id ? structuredClone(rec) : null),
    },
    state,
    dir,
    shadowWindows: 5,
    evalMs: 5,
    maxCostFactor: 50,
  });
  open.push(async () => {
    await agent.stop();
    await rig.close();
  });
  return { live, rig, state, dir, agent };
}

describe("model releases with variants", () => {
  it("attack: a variant file outside the release's folder ('../…') is refused, not loaded (also at publish)", async () => {
    const profile = "variants-a";
    const float = readFileSync(FLOAT);
    const dir = join(mkdtempSync(join(tmpdir(), "vigil-upd-variants-")), "updates");
    // Where the agent installs release 1; the variant points from there to a file it did not approve.
    const folder = join(dir, "models", `1-${sha(readFileSync(INT8)).slice(0, 12)}`);
    const { rec, manifest } = release(profile, (m) => {
      m.model.variants = [
        { precision: "float32", file: relative(folder, FLOAT), sha256: sha(float), bytes: float.length },
      ];
      m.model.prefer = { default: "float32" };
    });
    const s = await setup(profile, rec, { dir });
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure).toMatchObject({
      releaseId: "1",
      code: "MANIFEST_INVALID",
      reason: `the manifest names model file "${relative(folder, FLOAT)}", which is not a plain file name beside it`,
    });
    expect(s.agent.counters.installs).toBe(0);
    expect(s.rig.loop.models).toEqual([s.live]);
    // A property of the pinned manifest's bytes: remembered.
    expect(s.state.map.get("updates/failed/1")?.toString()).toMatch(/^MANIFEST_INVALID: /);
    // `vigil release publish` refuses the same manifest before anything is sent.
    await expect(
      planRelease({ kind: "model", target: profile, file: join(manifest, "..", basename(INT8)), manifest }),
    ).rejects.toMatchObject({ code: "MANIFEST_INVALID" });
  }, 60_000);

  it.each(["/abs/fd001.int8.onnx", "..", "sub/fd001.int8.onnx"])(
    "input: a variant file name %j is refused (MANIFEST_INVALID)",
    async (name) => {
      const profile = `variants-n-${name.length}`;
      const { rec } = release(profile, (m) => {
        m.model.variants = [{ precision: "float32", file: name, sha256: "0".repeat(64), bytes: 1 }];
      });
      const s = await setup(profile, rec);
      await s.rig.feedUntil(s.agent.check());
      expect(s.agent.status().lastFailure).toMatchObject({ code: "MANIFEST_INVALID" });
      expect(s.rig.loop.models).toEqual([s.live]);
    },
    60_000,
  );

  it("behavior: a variant the manifest prefers is not part of the release: the release's own file runs, also after a restart", async () => {
    const profile = "variants-b";
    const float = readFileSync(FLOAT);
    const { rec } = release(profile, (m) => {
      m.model.variants = [
        { precision: "float32", file: "fd001.onnx", sha256: sha(float), bytes: float.length },
      ];
      m.model.prefer = { default: "float32" };
    });
    const s = await setup(profile, rec);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure).toBeUndefined();
    expect(s.agent.counters.installs).toBe(1);
    const [now] = s.rig.loop.models;
    expect(`0x${now!.sha256}`).toBe(rec.contentHash);
    expect(now!.precision).toBe("int8");
    // A restart: the package's model is live again; the installed release is restored as it was.
    const again = await setup(profile, rec, { state: s.state, dir: s.dir });
    expect(await again.agent.restoreInstalled()).toBe(1);
    expect(again.rig.loop.models.map((m) => `0x${m.sha256}`)).toEqual([rec.contentHash]);
  }, 60_000);

  it("behavior: a publisher's own manifest with plain variant names is still published", async () => {
    const rel = releaseFolder({ profile: "variants-c", version: "3.1.0", precision: "float32" });
    const m = JSON.parse(readFileSync(rel.manifest, "utf8")) as ModelManifest;
    const int8 = readFileSync(INT8);
    m.model.variants = [
      { precision: "int8", file: "fd001.int8.onnx", sha256: sha(int8), bytes: int8.length },
    ];
    writeFileSync(rel.manifest, JSON.stringify(m));
    const plan = await planRelease({
      kind: "model",
      target: "variants-c",
      file: rel.file,
      manifest: rel.manifest,
    });
    expect(plan.input.contentHash).toBe(`0x${sha(readFileSync(rel.file))}`);
  });
});
