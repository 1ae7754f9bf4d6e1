/**
 * The model update agent and releases that carry the model file already live (contentHash = the
 * live sha256) beside a manifest of their own: new thresholds, data-quality rules, alert settings
 * (gateway/src/updates/README.md, "What the gateway does", step 1). Real inference loop and ONNX
 * models; the chain is a fake ReleaseSource and install reporter (fake-releases.ts).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, type Logger } from "../../gateway/src/core/log.ts";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import {
  MemoryUpdateState,
  ModelUpdateAgent,
  type ModelAgentOptions,
} from "../../gateway/src/updates/model-agent.ts";
import { FakeReleases } from "./fake-releases.ts";
import { LoopRig, liveModel } from "./rig.ts";

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

/** A logger that keeps every info and warning message. */
function recorder(): { log: Logger; info: string[]; warn: string[] } {
  const info: string[] = [];
  const warn: string[] = [];
  const log = {
    ...silentLogger,
    info: (o: unknown, m?: string) => void info.push(typeof o === "string" ? o : m!),
    warn: (o: unknown, m?: string) => void warn.push(typeof o === "string" ? o : m!),
  } as Logger;
  return { log, info, warn };
}

/** The alert thresholds a manifest-only release changes here (rul-warning at 40, not 50). */
const newThresholds = (m: ModelManifest): void => {
  m.alerts![0]!.threshold = 40;
  m.alerts![0]!.clear = 45;
};

/**
 * A gateway whose package runs FD001 float at 3.0.0 for `profile`; `restart()` is the same data
 * folder and chain after a restart: a new loop over the package's model and a new agent.
 */
async function setup(profile: string, o: Partial<ModelAgentOptions> = {}) {
  const releases = new FakeReleases();
  const state = new MemoryUpdateState();
  const dir = join(mkdtempSync(join(tmpdir(), "vigil-upd-manifest-")), "updates");
  const boot = async () => {
    const rig = new LoopRig(await liveModel(profile, "3.0.0"), profile);
    for (let i = 0; i < 5; i++) await rig.feed();
    const rec = recorder();
    const agent = new ModelUpdateAgent({
      loop: rig.loop,
      releases: releases as never,
      reporter: releases,
      state,
      dir,
      shadowWindows: 5,
      evalMs: 5,
      maxCostFactor: 50,
      log: rec.log,
      ...o,
    });
    open.push(async () => {
      await agent.stop();
      await rig.close();
    });
    return { rig, agent, ...rec };
  };
  return { releases, state, dir, ...(await boot()), restart: boot };
}

describe("model update agent: a release that changes only the manifest", () => {
  it("behavior: a newer release of the live model file with a new manifest is shadowed, swapped in, recorded and reported; later checks leave it alone", async () => {
    const s = await setup("mf-install");
    const before = s.rig.loop.models[0]!;
    await s.releases.add(1n, "mf-install", "3.1.0", undefined, "float32", newThresholds);
    await s.rig.feedUntil(s.agent.check());
    const now = s.rig.loop.models;
    expect(now.map((m) => [m.manifest.version, m.manifest.alerts![0]!.threshold])).toEqual([["3.1.0", 40]]);
    expect(now[0]!.sha256).toBe(before.sha256);
    expect(s.rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    expect(s.agent.counters).toMatchObject({ installs: 1, reports: 1, checkErrors: 0, rejected: {} });
    expect(s.releases.reports).toEqual([1n]);
    // Identical bytes on identical windows: the shadow agreed exactly.
    expect(s.agent.status().lastInstall).toMatchObject({
      releaseId: "1",
      version: "3001000",
      sha256: before.sha256,
      reported: true,
      shadow: { meanAbsDiff: 0, maxAbsDiff: 0 },
    });
    expect(s.info).toContain(
      "model release 1 installed: cmapss-fd001-rul 3.1.0 is live (same model file, new manifest)",
    );
    expect(s.warn).toEqual([]);
    const record = JSON.parse(s.state.map.get("updates/model/mf-install")!.toString()) as Record<
      string,
      unknown
    >;
    expect(record).toMatchObject({ releaseId: "1", sha256: before.sha256, reported: true });
    expect(record.manifestSha256).toMatch(/^[0-9a-f]{64}$/);
    // The installed release is live: checked again, it is neither installed again nor refused.
    for (let i = 0; i < 2; i++) await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ checks: 3, installs: 1, reports: 1, rejected: {} });
    expect(s.warn).toEqual([]);
  }, 60_000);

  it("behavior: after a restart the manifest-only install is restored over the package's older manifest, its failed report is sent, and checks stay silent", async () => {
    const s = await setup("mf-restart");
    s.releases.down.report = 1; // the report fails: retried at the next check
    await s.releases.add(1n, "mf-restart", "3.1.0", undefined, "float32", newThresholds);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 1, reports: 0, reportErrors: 1 });
    await s.agent.stop();
    // The package still ships the same ONNX file under its 3.0.0 manifest.
    const r = await s.restart();
    expect(r.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
    expect(r.agent.status().lastInstall).toBeUndefined();
    expect(await r.agent.restoreInstalled()).toBe(1);
    expect(r.rig.loop.models.map((m) => [m.manifest.version, m.manifest.alerts![0]!.threshold])).toEqual([
      ["3.1.0", 40],
    ]);
    // vigil update status after the restart: the install, as the last run recorded it.
    expect(r.agent.status().lastInstall).toEqual({
      ...s.agent.status().lastInstall,
      reported: false,
    });
    expect(r.agent.status().lastInstall!.atMs).toEqual(expect.any(Number));
    expect(r.rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    await r.rig.feedUntil(r.agent.check());
    expect(s.releases.reports).toEqual([1n]);
    expect(r.agent.counters).toMatchObject({ installs: 0, reports: 1, checkErrors: 0, rejected: {} });
    await r.rig.feedUntil(r.agent.check());
    expect(r.agent.counters).toMatchObject({ installs: 0, reports: 1, rejected: {} });
    expect(r.warn).toEqual([]);
    expect(r.info).toContain("installed model release 1 restored");
  }, 60_000);

  it("behavior: the live version's own release (the package's, whatever its manifest bytes) is neither installed nor refused, at any check or start", async () => {
    const s = await setup("mf-own");
    // Same file and version as the package's; its manifest differs only in a description.
    await s.releases.add(
      1n,
      "mf-own",
      "3.0.0",
      undefined,
      "float32",
      (m) => (m.description = "as published"),
    );
    await s.rig.feedUntil(s.agent.check());
    await s.rig.feedUntil(s.agent.check());
    const r = await s.restart();
    expect(await r.agent.restoreInstalled()).toBe(0);
    await r.rig.feedUntil(r.agent.check());
    for (const a of [s, r]) {
      expect(a.agent.counters).toMatchObject({ installs: 0, reports: 0, checkErrors: 0, rejected: {} });
      expect(a.agent.status().lastFailure).toBeUndefined();
      expect(a.warn).toEqual([]);
    }
    expect(s.state.map.has("updates/failed/1")).toBe(false);
    expect(r.rig.loop.models.map((m) => m.manifest.description)).not.toContain("as published");
  }, 60_000);

  it("behavior: the release whose pinned manifest is the live one is skipped without a word", async () => {
    const s = await setup("mf-same");
    await s.releases.add(1n, "mf-same", "3.0.0", undefined, "float32");
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 0, checkErrors: 0, rejected: {} });
    expect(s.warn).toEqual([]);
  }, 60_000);

  it("behavior: an operator's install of the live release does nothing: its folder stays, nothing is fetched, refused or remembered", async () => {
    const s = await setup("mf-again");
    const rel = await s.releases.add(1n, "mf-again", "3.1.0", undefined, "float32", newThresholds);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 1, rejected: {} });
    const [folder] = readdirSync(join(s.dir, "models"));
    const liveFiles = readdirSync(join(s.dir, "models", folder!));
    expect(liveFiles).toHaveLength(2); // the model file and its manifest
    // Its sources are gone: an install would have to fetch and could only fail.
    rmSync(rel.file);
    expect(await s.agent.installRelease(1n)).toEqual({ ok: true });
    expect(readdirSync(join(s.dir, "models", folder!))).toEqual(liveFiles);
    expect(s.agent.counters).toMatchObject({ installs: 1, rejected: {} });
    expect(s.agent.status().lastFailure).toBeUndefined();
    expect(s.state.map.has("updates/failed/1")).toBe(false);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
    expect(s.info).toContain("model release 1 is live already: nothing to install");
    expect(s.warn).toEqual([]);
  }, 60_000);

  it("behavior: an older release of the live model file is a rollback: refused once (NOT_NEWER), remembered", async () => {
    const s = await setup("mf-old");
    await s.releases.add(1n, "mf-old", "2.9.0", undefined, "float32");
    await s.rig.feedUntil(s.agent.check());
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 0, rejected: { NOT_NEWER: 1 } });
    expect(s.warn).toEqual([
      "model release 1 refused: release 1 has version 2009000, not above the installed 3000000 (rollback refused)",
    ]);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
  }, 60_000);

  it("behavior: the shadow judges the candidate by its own manifest: an output range the model file leaves is SHADOW_FAILED, the live model stays", async () => {
    const s = await setup("mf-range");
    await s.releases.add(1n, "mf-range", "3.1.0", undefined, "float32", (m) => (m.outputs[0]!.max = 1));
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure).toMatchObject({ releaseId: "1", code: "SHADOW_FAILED" });
    expect(s.agent.status().lastFailure!.reason).toMatch(/outside the manifest's range/);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
    expect(s.rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    // After a restart, vigil update status still names the refusal (and retry without an id finds it).
    await s.agent.stop();
    const r = await s.restart();
    await r.agent.restoreInstalled();
    expect(r.agent.status().lastFailure).toEqual(s.agent.status().lastFailure);
    expect(r.agent.status().lastInstall).toBeUndefined();
  }, 60_000);
});
