/**
 * A gateway loads mqtt.js only when it connects to an external broker (mqtt.url, or a Mosquitto
 * dynamic-security sync), serialport only when it opens a serial port, and the IPFS modules only
 * when it fetches an ipfs:// release. On its embedded broker with no serial sources, the default of
 * `vigil init`, none of them is imported: that is memory a Pi keeps (gateway/src/infer/README.md
 * "Where the RSS goes"). A resolve hook in the spawned `vigil start` (helpers/import-trace.ts)
 * writes the package of every module it resolves under those packages to a file.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { importTraceHook } from "../helpers/import-trace.ts";
import { freePort, stop } from "../helpers/procs.ts";
import { spawnVigil, until } from "../helpers/vigil-child.ts";

const WATCHED = /\/node_modules\/(mqtt|serialport|@serialport\/[^/]+|ipfs-unixfs-importer|multiformats)\//;
const { dir, register } = importTraceHook(WATCHED);

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) await stop(c);
});

/** The watched packages a `vigil start` with `config` resolved by the time `ready(log)` holds. */
async function packagesLoaded(
  name: string,
  config: Record<string, unknown>,
  ready: (log: string, loaded: Set<string>) => boolean,
): Promise<{ loaded: Set<string>; log: string }> {
  const dataDir = mkdtempSync(join(dir, `${name}-`));
  const file = join(dataDir, "config.json");
  writeFileSync(
    file,
    JSON.stringify({ dataDir, attest: { enabled: false }, log: { statsIntervalMs: 0 }, ...config }),
  );
  const trace = join(dir, `${name}.txt`);
  const g = spawnVigil(children, ["start", "-c", file], {
    NODE_OPTIONS: `--import ${register}`,
    VIGIL_TRACE_FILE: trace,
    VIGIL_DIST: "0",
  });
  const read = (): Set<string> =>
    new Set(existsSync(trace) ? readFileSync(trace, "utf8").split("\n").filter(Boolean) : []);
  await until(
    `${name}: gateway ready`,
    () => {
      if (g.exitCode !== null) throw new Error(g.log());
      return ready(g.log(), read());
    },
    60_000,
    { detail: () => g.log() },
  );
  await stop(g);
  return { loaded: read(), log: g.log() };
}

describe("the gateway imports what its configuration uses", () => {
  it("behavior: on the embedded broker without serial sources, mqtt.js, serialport and the IPFS modules are never loaded", async () => {
    const r = await packagesLoaded("embedded", { mqtt: { embedded: { port: 0 } } }, (log) =>
      log.includes("gateway started"),
    );
    expect(r.log).toContain('"mqtt":"mqtt://127.0.0.1:');
    expect([...r.loaded]).toEqual([]);
  }, 90_000);

  it("behavior: a serial source and an external broker load them when they connect", async () => {
    // Nothing listens on the port and the tty does not exist: both sources keep retrying, which
    // is enough to load the packages.
    const port = await freePort();
    const r = await packagesLoaded(
      "external",
      {
        mqtt: { embedded: { enabled: false }, url: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 200 },
        serial: [{ path: join(dir, "no-such-tty") }],
      },
      (_log, loaded) => loaded.has("mqtt") && loaded.has("serialport"),
    );
    expect(r.loaded.has("mqtt")).toBe(true);
    expect(r.loaded.has("serialport")).toBe(true);
  }, 90_000);
});
