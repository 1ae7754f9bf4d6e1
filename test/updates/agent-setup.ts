/**
 * The model-agent unit tests' set-up: a real inference loop over FD001 (rig.ts) fed five frames,
 * releases in memory (fake-releases.ts), the agent's state in memory, a temporary updates folder;
 * closed after each test.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import {
  MemoryUpdateState,
  ModelUpdateAgent,
  type ModelAgentOptions,
} from "../../gateway/src/updates/model-agent.ts";
import { FakeReleases } from "./fake-releases.ts";
import { LoopRig, liveModel } from "./rig.ts";

/** Closed after each test (agents and loops a test makes beside its set-up). */
export const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

/** An agent (5 shadow windows, cost limit 50×) over a live FD001 model serving `profile`; `make` builds another over the same state. */
export async function setup(profile: string, o: Partial<ModelAgentOptions> = {}) {
  const live = await liveModel(profile, "3.0.0");
  const rig = new LoopRig(live, profile);
  for (let i = 0; i < 5; i++) await rig.feed();
  const releases = new FakeReleases();
  const state = (o.state as MemoryUpdateState | undefined) ?? new MemoryUpdateState();
  const dir = join(mkdtempSync(join(tmpdir(), "vigil-upd-faults-")), "updates");
  const make = (extra: Partial<ModelAgentOptions> = {}) =>
    new ModelUpdateAgent({
      loop: rig.loop,
      releases: releases as never,
      state,
      dir,
      shadowWindows: 5,
      evalMs: 5,
      maxCostFactor: 50,
      ...o,
      ...extra,
    });
  const agent = make();
  open.push(async () => {
    await agent.stop();
    await rig.close();
  });
  return { live, rig, releases, state, agent, make, dir };
}

/** The remembered failure of release `id` ("CODE: reason"), or undefined when none is. */
export function remembered(state: MemoryUpdateState, id: bigint): string | undefined {
  const b = state.map.get(`updates/failed/${id}`);
  return b && b.length > 0 ? b.toString() : undefined;
}
