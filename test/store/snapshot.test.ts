/**
 * Store snapshots (`vigil receipt` while the gateway runs) that an export cut short left behind
 * (audit-growth defect 7: their hard links pin table files compaction has deleted) are removed by
 * the next snapshot and by the gateway's store open, once their owner process no longer runs; the
 * folders of live processes, of other hosts and of earlier versions (no owner in the name) stay.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../gateway/src/core/log.ts";
import { silentLogger } from "../../gateway/src/core/log.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { removeStaleSnapshots, snapshotStore } from "../../gateway/src/store/snapshot.ts";
import { stop } from "../helpers/procs.ts";

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await stop(c);
});

/** A node process that runs until stopped: the owner of a live snapshot. */
async function liveProcess(): Promise<number> {
  const c = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
  children.push(c);
  await new Promise((res) => c.once("spawn", res));
  return c.pid!;
}

/** The PID of a node process that has exited: the owner of a stale snapshot. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((res) => c.once("exit", res));
  return c.pid!;
}

/** A snapshot folder as an export leaves it, a linked table file included. */
function leftSnapshot(data: string, name: string): string {
  mkdirSync(join(data, name, "s0", "db"), { recursive: true });
  writeFileSync(join(data, name, "s0", "db", "000005.ldb"), "pinned table");
  return name;
}

/** A data folder whose `store` holds a (closed) Vigil store. */
async function dataFolder(): Promise<{ data: string; storeDir: string }> {
  const data = mkdtempSync(join(tmpdir(), "vigil-snap-"));
  const storeDir = join(data, "store");
  const s = new LevelFrameStore({ dir: storeDir, reserveBytes: 0 });
  await s.open();
  await s.close();
  return { data, storeDir };
}

describe("store snapshots left by interrupted exports", () => {
  it("behavior: the next snapshot removes one whose owner process is gone, and keeps those of live processes (another one, this one), of another host and of earlier versions", async () => {
    const { data, storeDir } = await dataFolder();
    const host = hostname();
    const live = await liveProcess();
    const dead = await deadPid();
    const stale = leftSnapshot(data, `.vigil-snapshot-${dead}@${host}-AbC123`);
    const kept = [
      leftSnapshot(data, `.vigil-snapshot-${live}@${host}-DeF456`),
      leftSnapshot(data, `.vigil-snapshot-${process.pid}@${host}-GhI789`),
      leftSnapshot(data, `.vigil-snapshot-${dead}@not-${host}-JkL012`), // its PIDs are not ours to judge
      leftSnapshot(data, ".vigil-snapshot-MnO345"), // an earlier version's: owner unknown
    ];

    const snap = await snapshotStore(storeDir);
    const mine = readdirSync(data).filter((n) => ![...kept, "store"].includes(n));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatch(new RegExp(`^\\.vigil-snapshot-${process.pid}@${host}-[A-Za-z0-9]{6}$`));
    expect(readdirSync(data)).not.toContain(stale);
    await snap.remove();
    expect(readdirSync(data).sort()).toEqual([...kept, "store"].sort());

    // Its owner stopped: the live process's folder is stale now.
    await stop(children.pop());
    expect(await removeStaleSnapshots(storeDir)).toEqual([join(data, kept[0]!)]);
    expect(readdirSync(data).sort()).toEqual([...kept.slice(1), "store"].sort());
  });

  it("behavior: the gateway's store open removes a stale snapshot beside the store and says so; a reading open (create: false) removes nothing", async () => {
    const { data, storeDir } = await dataFolder();
    const host = hostname();
    const live = leftSnapshot(data, `.vigil-snapshot-${await liveProcess()}@${host}-AbC123`);
    const stale = leftSnapshot(data, `.vigil-snapshot-${await deadPid()}@${host}-DeF456`);

    const reader = new LevelFrameStore({ dir: storeDir, reserveBytes: 0, create: false });
    await reader.open();
    await reader.close();
    expect(readdirSync(data).sort()).toEqual([live, stale, "store"].sort());

    const infos: Array<[unknown, string | undefined]> = [];
    const log: Logger = { ...silentLogger, info: (o: unknown, m?: string) => void infos.push([o, m]) };
    const gw = new LevelFrameStore({ dir: storeDir, reserveBytes: 0, logger: log });
    await gw.open();
    await gw.close();
    expect(readdirSync(data).sort()).toEqual([live, "store"].sort());
    expect(infos).toContainEqual([
      { removed: [join(data, stale)] },
      "removed store snapshots left by interrupted vigil receipt runs",
    ]);
  });
});
