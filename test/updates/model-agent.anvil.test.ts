// The model update agent against a real anvil: publish (2-of-3 approval), fetch, check, shadow,
// swap while frames flow, signed install report on chain — and the attack list of issue 11, one
// test per line, each ending with the old model still live and the reason counted.
import { createServer, type Server } from "node:http";
import { copyFileSync, readdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { cidV1OfFile } from "../../gateway/src/updates/cid.ts";
import {
  chainInstallReporter,
  chainReleaseSource,
  MemoryUpdateState,
  ModelUpdateAgent,
  type ModelAgentOptions,
} from "../../gateway/src/updates/model-agent.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";
import {
  GATEWAY_ID,
  LoopRig,
  approve,
  chainRig,
  liveModel,
  propose,
  releaseFolder,
  type ChainRig,
} from "./rig.ts";

let r: ChainRig;
beforeAll(async () => {
  r = await chainRig();
});
afterAll(async () => {
  await r?.close();
});

const open: { rig: LoopRig; agent: ModelUpdateAgent }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.agent.stop();
    await o.rig.close();
  }
});

let n = 0;
async function setup(
  o: Partial<ModelAgentOptions> & { liveVersion?: string; profile?: string } = {},
): Promise<{
  profile: string;
  live: LoadedModel;
  rig: LoopRig;
  agent: ModelUpdateAgent;
  state: MemoryUpdateState;
}> {
  const profile = o.profile ?? `upd-${++n}-${Date.now()}`;
  const live = await liveModel(profile, o.liveVersion ?? "3.0.0");
  const rig = new LoopRig(live, profile);
  for (let i = 0; i < 5; i++) await rig.feed();
  const state = (o.state as MemoryUpdateState | undefined) ?? new MemoryUpdateState();
  const agent = new ModelUpdateAgent({
    loop: rig.loop,
    releases: chainReleaseSource(r.gateway, GATEWAY_ID),
    reporter: chainInstallReporter(r.gateway, GATEWAY_ID, r.sign),
    state,
    dir: o.dir ?? join(r.dataDir, `updates-${n}`),
    shadowWindows: 9,
    evalMs: 5,
    // The int8 model costs 1–4× the float one here (QDQ on x64); the cost gate has its own test.
    maxCostFactor: 50,
    ...o,
  });
  open.push({ rig, agent });
  return { profile, live, rig, agent, state };
}

/** The attack ends with the old model live, the reason counted and in the status. */
function expectRefused(s: { agent: ModelUpdateAgent; live: LoadedModel; rig: LoopRig }, code: string): void {
  expect(s.rig.loop.models).toEqual([s.live]);
  expect(s.rig.loop.lanes()).toHaveLength(1);
  expect(s.agent.counters.rejected[code as "NOT_NEWER"]).toBe(1);
  expect(s.agent.counters.installs).toBe(0);
  expect(s.agent.status().lastFailure?.code).toBe(code);
}

describe("model update agent on anvil", () => {
  it("behavior: a 2-of-3 approved int8 release is fetched, shadowed, swapped while frames flow, persisted and reported on chain", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const id = await propose(r, { profile: s.profile, ...rel });
    await approve(r, id, 1);
    await s.agent.check(); // below threshold: nothing happens
    expect(s.rig.loop.models).toEqual([s.live]);
    await r.approvers[1]!.approveRelease(id);
    await s.rig.feedUntil(s.agent.check());
    const [now] = s.rig.loop.models;
    expect(now).not.toBe(s.live);
    expect(now!.sha256).toBe(readFileSync(rel.file).length > 0 ? now!.sha256 : "");
    expect(`0x${now!.sha256}`).toBe((await r.gateway.getRelease(id))!.contentHash);
    expect(s.agent.counters.installs).toBe(1);
    const st = s.agent.status();
    expect(st.lastInstall).toMatchObject({ releaseId: id.toString(), version: "3001000", reported: true });
    expect(st.lastInstall!.shadow!.windows).toBeGreaterThanOrEqual(9);
    expect(st.lastInstall!.shadow!.costRatio).toBeGreaterThan(0);
    // Every window after the swap names the new model hash (what INFERENCE/ALERT leaves commit).
    const before = s.rig.results.length;
    for (let i = 0; i < 3; i++) await s.rig.feed();
    const after = s.rig.results.slice(before);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((x) => x.model === now)).toBe(true);
    // Signed report on chain, and the installed version persisted.
    expect(await r.gateway.installedRelease(GATEWAY_ID, "model")).toBe(id);
    expect(JSON.parse(s.state.map.get(`updates/model/${s.profile}`)!.toString())).toMatchObject({
      version: "3001000",
      reported: true,
    });
    // Already running it: the next check does nothing.
    await s.agent.check();
    expect(s.agent.counters.installs).toBe(1);
    // A second release replaces the first: the first's installed files are removed after the swap.
    const id2 = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.2.0", precision: "float32" }),
    });
    await approve(r, id2);
    await s.rig.feedUntil(s.agent.check());
    expect(readdirSync(join(r.dataDir, `updates-${n}`, "models"))).toEqual([
      `${id2}-${s.rig.loop.models[0]!.sha256.slice(0, 12)}`,
    ]);
  });

  it("behavior: after a restart the installed release is live again, without the chain; lost files are fetched again", async () => {
    const s = await setup();
    const dir = join(r.dataDir, `updates-${n}`);
    const id = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    await approve(r, id);
    await s.rig.feedUntil(s.agent.check());
    const sha = s.rig.loop.models[0]!.sha256;
    // Restart: the package's float model is loaded again; the agent puts the installed one back.
    const offline = {
      activeRelease: () => Promise.reject(new Error("offline")),
      getRelease: () => Promise.reject(new Error("offline")),
    };
    const s2 = await setup({ profile: s.profile, state: s.state, dir, releases: offline });
    expect(s2.rig.loop.models[0]!.sha256).not.toBe(sha);
    expect(await s2.agent.restoreInstalled()).toBe(1);
    expect(s2.rig.loop.models[0]!.sha256).toBe(sha);
    await s2.rig.feed();
    expect(s2.rig.results.at(-1)!.model.sha256).toBe(sha);
    // Restart with the files gone: nothing to restore; the next check fetches the same release again.
    rmSync(join(dir, "models"), { recursive: true, force: true });
    const s3 = await setup({ profile: s.profile, state: s.state, dir });
    expect(await s3.agent.restoreInstalled()).toBe(0);
    await s3.rig.feedUntil(s3.agent.check());
    expect(s3.agent.status().lastFailure).toBeUndefined();
    expect(s3.rig.loop.models[0]!.sha256).toBe(sha);
  });

  it("attack: rollback to an older version is refused (also after a restored old data folder, from the on-chain report)", async () => {
    const s = await setup();
    const old = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "2.9.0" }),
    });
    await approve(r, old);
    await s.agent.check();
    expectRefused(s, "NOT_NEWER");
    // Install 3.2.0 (reported on chain), then restore an old data folder: empty state, float 3.0.0
    // live again. Asking for the old-but-Active 3.1.0 is still refused: the chain remembers 3.2.0.
    const mid = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    await approve(r, mid);
    const top = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.2.0" }),
    });
    await approve(r, top);
    await s.rig.feedUntil(s.agent.check());
    expect(await r.gateway.installedRelease(GATEWAY_ID, "model")).toBe(top);
    const res = await restoredRequest(mid, s.profile);
    expect(res).toMatchObject({ ok: false, code: "NOT_NEWER" });
  });

  it("attack: the same version with another hash is refused (the chain refuses to propose it; a local model of that version blocks it)", async () => {
    const s = await setup({ liveVersion: "3.1.0" });
    const id = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "NOT_NEWER");
    await expect(
      propose(r, {
        profile: s.profile,
        ...releaseFolder({ profile: s.profile, version: "3.1.0", precision: "float32" }),
      }),
    ).rejects.toThrow(/is not above 3001000, the latest model version proposed/);
  });

  it("attack: an unapproved and a below-threshold release are never installed, even when asked for", async () => {
    const s = await setup();
    const none = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    const one = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.2.0" }),
    });
    await approve(r, one, 1);
    await s.agent.check();
    expect(s.rig.loop.models).toEqual([s.live]);
    expect(await s.agent.installRelease(none)).toMatchObject({ ok: false, code: "NOT_ACTIVE" });
    expect(await s.agent.installRelease(one)).toMatchObject({ ok: false, code: "NOT_ACTIVE" });
    expect(s.rig.loop.models).toEqual([s.live]);
  });

  it("attack: a release revoked during its shadow phase is not promoted", async () => {
    const s = await setup({ shadowWindows: 1_000_000, shadowMaxMs: 60_000 });
    const id = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    await approve(r, id);
    const checking = s.agent.check();
    await s.rig.feedUntil(
      (async () => {
        await expect.poll(() => s.agent.status().state, { timeout: 10_000 }).toBe("shadowing");
        await r.manager.revokeRelease(id, "recalled");
        s.agent.judgeShadowNow();
        await checking;
      })(),
    );
    expectRefused(s, "REVOKED");
  });

  it("attack: a revoked release is not installed", async () => {
    const s = await setup();
    const id = await propose(r, {
      profile: s.profile,
      ...releaseFolder({ profile: s.profile, version: "3.1.0" }),
    });
    await approve(r, id);
    await r.manager.revokeRelease(id, "bad calibration");
    await s.agent.check();
    expect(s.rig.loop.models).toEqual([s.live]);
    expect(await s.agent.installRelease(id)).toMatchObject({ ok: false, code: "REVOKED" });
    expectRefused(s, "REVOKED");
  });

  it("attack: bytes whose sha256 differs from the release's are refused", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const id = await propose(r, { profile: s.profile, ...rel });
    const b = readFileSync(rel.file);
    b[b.length - 1]! ^= 0xff; // same size, one byte changed, after publishing
    writeFileSync(rel.file, b);
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "HASH_MISMATCH");
  });

  it("attack: a body longer than the recorded size, and an endless download, are cut and refused", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const id = await propose(r, { profile: s.profile, ...rel });
    writeFileSync(rel.file, Buffer.concat([readFileSync(rel.file), Buffer.alloc(10)]));
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "SIZE_MISMATCH");
    // Endless: an ipfs gateway that never stops sending.
    let sent = 0;
    const srv = await serve((_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (res.write(chunk)) {
          sent += chunk.length;
          if (sent > 64 * 1024 * 1024) return void res.end(); // safety net: the test fails below
        }
        res.once("drain", pump);
      };
      pump();
    });
    const s2 = await setup({ ipfsGateway: srv.url });
    const rel2 = releaseFolder({ profile: s2.profile, version: "3.1.0" });
    const cid = await cidV1OfFile(rel2.file);
    const id2 = await propose(r, { profile: s2.profile, ...rel2, uris: [`ipfs://${cid}`] });
    await approve(r, id2);
    await s2.agent.check();
    expectRefused(s2, "SIZE_MISMATCH");
    expect(sent).toBeLessThan(16 * 1024 * 1024);
    expect(readdirSync(join(r.dataDir, `updates-${n}`, "staging"))).toEqual([]);
    srv.server.close();
  });

  it("attack: a release for another target is refused (its manifest serves other profiles)", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: "cmapss-fd002", version: "3.1.0" });
    const id = await propose(r, { profile: s.profile, ...rel });
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "WRONG_TARGET");
    // And a release whose on-chain target is another profile is not taken for this one.
    const other = await propose(r, {
      profile: `${s.profile}-x`,
      ...releaseFolder({ profile: s.profile, version: "3.2.0" }),
    });
    await approve(r, other);
    expect(await s.agent.installRelease(other)).toMatchObject({ ok: false, code: "WRONG_TARGET" });
  });

  it("attack: a malformed ONNX file is refused (the gateway checks; it does not trust the publisher)", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const junk = Buffer.from("this is not an ONNX protobuf ".repeat(100));
    writeFileSync(rel.file, junk);
    const m = JSON.parse(readFileSync(rel.manifest, "utf8"));
    m.model.sha256 = (await import("node:crypto")).createHash("sha256").update(junk).digest("hex");
    m.model.bytes = junk.length;
    writeFileSync(rel.manifest, JSON.stringify(m));
    await expect(propose(r, { profile: s.profile, ...rel })).rejects.toThrow(/onnxruntime cannot load/);
    // Proposed by hand (bypassing the CLI's check): the gateway refuses it.
    const id = await proposeUnchecked(s.profile, rel);
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "MODEL_INVALID");
  });

  it("attack: an ONNX whose shapes contradict its manifest is refused", async () => {
    const s = await setup();
    const rel = releaseFolder({
      profile: s.profile,
      version: "3.1.0",
      edit: (m) => {
        m.inputs.window = 50;
        m.inputs.shape = ["batch", 50, 30];
      },
    });
    await expect(propose(r, { profile: s.profile, ...rel })).rejects.toThrow(
      /has shape \[batch, 60, 30\], the manifest declares \[batch, 50, 30\]/,
    );
    const id = await proposeUnchecked(s.profile, rel);
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "MANIFEST_MISMATCH");
  });

  it("attack: the manifest of one release with the model of another (mix-and-match) is refused", async () => {
    const s = await setup();
    const a = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const b = releaseFolder({ profile: s.profile, version: "3.2.0", precision: "float32" });
    const idA = await propose(r, { profile: s.profile, ...a });
    await approve(r, idA);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure).toBeUndefined();
    expect(s.agent.counters.installs).toBe(1);
    const idB = await propose(r, { profile: s.profile, ...b });
    // Beside B's model, the attacker puts A's manifest under B's manifest name.
    copyFileSync(a.manifest, b.manifest);
    await approve(r, idB);
    await s.agent.check();
    expect(s.agent.counters.rejected.MANIFEST_INVALID).toBe(1);
    // Only the installed release's folder is kept (the refused one was removed).
    expect(readdirSync(join(r.dataDir, `updates-${n}`, "models"))).toEqual([
      `${idA}-${s.rig.loop.models[0]!.sha256.slice(0, 12)}`,
    ]);
    expect(s.rig.loop.models[0]!.sha256).toBe(`${(await r.gateway.getRelease(idA))!.contentHash.slice(2)}`);
  });

  it("attack: an ipfs:// gateway that returns other bytes is refused (sha256 and the CID are recomputed)", async () => {
    let body = Buffer.alloc(0);
    const srv = await serve((_req, res) => res.end(body));
    const s = await setup({ ipfsGateway: srv.url });
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const cid = await cidV1OfFile(rel.file);
    // Other bytes of the right length.
    body = Buffer.alloc(readFileSync(rel.file).length, 1);
    const id = await propose(r, { profile: s.profile, ...rel, uris: [`ipfs://${cid}`] });
    await approve(r, id);
    await s.agent.check();
    expectRefused(s, "HASH_MISMATCH");
    // The release's own bytes, but served for a CID that is not theirs: the CID check refuses it.
    const s2 = await setup({ ipfsGateway: srv.url });
    const rel2 = releaseFolder({ profile: s2.profile, version: "3.1.0" });
    body = readFileSync(rel2.file);
    const wrongCid = await cidV1OfFile(rel2.manifest);
    const id2 = await propose(r, { profile: s2.profile, ...rel2, uris: [`ipfs://${wrongCid}`] });
    await approve(r, id2);
    await s2.agent.check();
    expectRefused(s2, "CID_MISMATCH");
    srv.server.close();
  });

  it("behavior: a candidate with out-of-range outputs, or too costly, fails in shadow and the old model stays", async () => {
    const s = await setup();
    const rel = releaseFolder({
      profile: s.profile,
      version: "3.1.0",
      edit: (m) => (m.outputs[0]!.max = 1), // RUL is 0–125: most outputs are now out of range
    });
    const id = await propose(r, { profile: s.profile, ...rel });
    await approve(r, id);
    await s.rig.feedUntil(s.agent.check());
    expectRefused(s, "SHADOW_FAILED");
    expect(s.agent.status().lastFailure!.reason).toMatch(/outside the manifest's range/);
    const s2 = await setup({ maxCostFactor: 0.001 });
    const id2 = await propose(r, {
      profile: s2.profile,
      ...releaseFolder({ profile: s2.profile, version: "3.1.0" }),
    });
    await approve(r, id2);
    await s2.rig.feedUntil(s2.agent.check());
    expectRefused(s2, "SHADOW_FAILED");
    expect(s2.agent.status().lastFailure!.reason).toMatch(
      /× the live model's \(limit 0\.001×; judged after \d+ windows\)/,
    );
  });

  it("attack: freeze — when checks fail for longer than staleAfterMs the agent marks itself stale and alerts", async () => {
    const clock = new FakeClock();
    const stale: boolean[] = [];
    const dead = { ...chainReleaseSource(r.gateway, GATEWAY_ID) };
    let frozen = false;
    const s = await setup({
      clock,
      staleAfterMs: 60_000,
      onStale: (v) => stale.push(v),
      releases: {
        ...dead,
        activeRelease: (k, t) =>
          frozen ? Promise.reject(new Error("connection refused")) : dead.activeRelease(k, t),
      },
    });
    await s.agent.check();
    expect(s.agent.status().stale).toBe(false);
    frozen = true;
    await s.agent.check();
    clock.advanceMs(61_000);
    await s.agent.check();
    expect(s.agent.counters.checkErrors).toBe(2);
    expect(s.agent.status()).toMatchObject({ stale: true, state: "stale" });
    expect(stale).toEqual([true]);
    frozen = false;
    await s.agent.check();
    expect(s.agent.status().stale).toBe(false);
    expect(stale).toEqual([true, false]);
  });

  it("attack: freeze with one RPC endpoint that answers from an old view — nothing is installed from a view older than staleAfterMs, and the alarm counts from the view's time", async () => {
    const clock = new FakeClock();
    const stale: boolean[] = [];
    const nowS = (): number => Math.floor(clock.nowMs() / 1000);
    // The chain source gives its clock (the newest block's time) only when asked (start.ts: not
    // on a local development chain); here a stand-in for a frozen endpoint's clock.
    expect(chainReleaseSource(r.gateway, GATEWAY_ID).chainTimeS).toBeUndefined();
    const real = chainReleaseSource(r.gateway, GATEWAY_ID, { checkViewAge: true });
    expect(await real.chainTimeS!()).toBe(await r.gateway.now());
    let headS = nowS();
    const s = await setup({
      clock,
      staleAfterMs: 60_000,
      onStale: (v) => stale.push(v),
      releases: { ...chainReleaseSource(r.gateway, GATEWAY_ID), chainTimeS: async () => BigInt(headS) },
    });
    await s.agent.check();
    // The endpoint stops following the chain: a 50 s old view is still read and judged.
    clock.advanceMs(50_000);
    await s.agent.check();
    expect(s.agent.status()).toMatchObject({ stale: false, lastCheckError: undefined });
    // Counted from the view's time (50 s before that check), not from the check: stale 15 s later.
    clock.advanceMs(15_000);
    s.agent.checkStale();
    expect(s.agent.status()).toMatchObject({ stale: true, state: "stale" });
    expect(stale).toEqual([true]);
    // A release is approved meanwhile; a 65 s old view is refused before any read.
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const id = await propose(r, { profile: s.profile, ...rel });
    await approve(r, id, 2);
    await s.agent.check();
    expect(s.agent.counters.checkErrors).toBe(1);
    expect(s.agent.status().lastCheckError).toBe(
      "the RPC endpoint's newest block is 65 s old (limit 60 s, updates.staleAfterMs): a frozen or lagging endpoint or a halted chain; nothing is installed from it",
    );
    expect(s.rig.loop.models).toEqual([s.live]);
    expect(s.agent.counters.installs).toBe(0);
    // The endpoint catches up: the release is installed, the alarm cleared.
    headS = nowS();
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
    expect(s.rig.loop.models).not.toEqual([s.live]);
    expect(stale).toEqual([true, false]);
  });

  it("behavior: a failed release is not retried in a loop; it is retried when an operator asks", async () => {
    const s = await setup();
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const good = readFileSync(rel.file);
    const id = await propose(r, { profile: s.profile, ...rel });
    writeFileSync(rel.file, Buffer.concat([good, Buffer.alloc(1)]));
    await approve(r, id);
    await s.agent.check();
    await s.agent.check();
    await s.agent.check();
    expect(s.agent.counters.rejected.SIZE_MISMATCH).toBe(1);
    writeFileSync(rel.file, good); // fixed at the source
    await s.agent.retry(id);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
  });

  it("behavior: an unreachable artifact host is not remembered: every check tries again (model, then manifest) and the release installs once it answers", async () => {
    const down = new Set<string>(); // CIDs the IPFS gateway answers 503 for
    const files = new Map<string, string>(); // CID → file
    const asked: string[] = [];
    const srv = await serve((req, res) => {
      const cid = basename(req.url ?? "");
      asked.push(cid);
      const file = files.get(cid);
      if (down.has(cid) || !file) res.writeHead(503).end();
      else res.end(readFileSync(file));
    });
    const s = await setup({ ipfsGateway: srv.url });
    const rel = releaseFolder({ profile: s.profile, version: "3.1.0" });
    const model = await cidV1OfFile(rel.file);
    const manifest = await cidV1OfFile(rel.manifest);
    files.set(model, rel.file).set(manifest, rel.manifest);
    const id = await propose(r, { profile: s.profile, ...rel, uris: [`ipfs://${model}`] });
    await approve(r, id);
    down.add(model);
    await s.agent.check();
    await s.agent.check();
    expect(asked).toEqual([model, model]);
    expect(s.agent.counters.rejected).toEqual({ FETCH_FAILED: 2 });
    expect(s.agent.status().lastFailure).toMatchObject({ releaseId: `${id}`, code: "FETCH_FAILED" });
    expect(await s.agent.retry(id)).toBe(false); // nothing to forget
    // The model is back, its manifest not yet: unreachable, not a bad manifest.
    down.clear();
    down.add(manifest);
    await s.agent.check();
    expect(asked.slice(2)).toEqual([model, manifest]);
    expect(s.agent.counters.rejected).toEqual({ FETCH_FAILED: 3 });
    expect(s.rig.loop.models).toEqual([s.live]);
    // Both back: the next scheduled check installs it, no operator involved.
    down.clear();
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
    expect(s.rig.loop.models[0]!.sha256).toBe((await r.gateway.getRelease(id))!.contentHash.slice(2));
    srv.server.close();
  });
});

async function proposeUnchecked(profile: string, rel: { file: string; manifest: string }): Promise<bigint> {
  const { createHash } = await import("node:crypto");
  const bytes = readFileSync(rel.file);
  const mBytes = readFileSync(rel.manifest);
  const manifestFile = rel.manifest.split("/").pop()!;
  const res = await r.manager.proposeRelease({
    kind: "model",
    target: targetId("model", profile),
    version: 3_001_000n,
    contentHash: `0x${createHash("sha256").update(bytes).digest("hex")}`,
    size: BigInt(bytes.length),
    trainingDataHash: `0x${"0".repeat(64)}`,
    uris: [pathToFileURL(rel.file).href],
    metrics: JSON.stringify({
      manifest: {
        file: manifestFile,
        sha256: createHash("sha256").update(mBytes).digest("hex"),
        cid: "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
      },
    }),
  });
  return res.releaseId;
}

/** A restored gateway asked to install `id` of `profile` (its live model serves that profile). */
async function restoredRequest(id: bigint, profile: string): Promise<unknown> {
  const live = await liveModel(profile, "3.0.0");
  const rig = new LoopRig(live, profile);
  await rig.feed();
  const agent = new ModelUpdateAgent({
    loop: rig.loop,
    releases: chainReleaseSource(r.gateway, GATEWAY_ID),
    state: new MemoryUpdateState(),
    dir: join(r.dataDir, "restored"),
    shadowWindows: 3,
    evalMs: 5,
  });
  open.push({ rig, agent });
  const res = await agent.installRelease(id);
  expect(rig.loop.models).toEqual([live]);
  return res;
}

async function serve(
  handler: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
