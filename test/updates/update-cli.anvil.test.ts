// `vigil update` as an operator runs it: the CLI as a child process against a running gateway on
// anvil (Runtime with the embedded broker, the HTTP endpoint, updates on with a yearly cron).
// A release that fails (its file was altered after proposal) is refused once and not retried by
// later checks; once its file is fixed at the source, `vigil update retry` (no id: the last
// failure) installs it while engines stream. A gateway that does not run is one clear line.
import { readFileSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { Runtime } from "../../gateway/src/runtime.ts";
import { freePort, runVigil } from "../helpers/procs.ts";
import {
  approve,
  chainRig,
  engines,
  gateway,
  PROFILE,
  propose,
  releaseFolder,
  type ChainRig,
} from "./rig.ts";

let r: ChainRig | undefined;
let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.stop();
  await r?.close();
  rt = undefined;
  r = undefined;
});

const vigil = runVigil;

describe("vigil update against a running gateway", () => {
  it("behavior: status, check (a refused release is not retried), retry after the fix installs it", async () => {
    r = await chainRig();
    rt = gateway(r, {
      updates: {
        enabled: true,
        schedule: "0 0 1 1 *",
        shadowWindows: 10,
        maxCostFactor: 50,
        firmware: false,
      },
    });
    await rt.start();
    const url = rt.http!.url;
    const agent = rt.updates!.model!;
    await expect.poll(() => agent.status().lastCheckMs, { timeout: 10_000 }).toBeDefined();

    const st = await vigil(["update", "status", "--url", url]);
    expect(st).toMatchObject({ code: 0, stderr: "" });
    expect(st.stdout).toContain(`vigil update: the gateway at ${url}`);
    expect(st.stdout).toMatch(/model +idle/);

    // A release whose file no longer matches what was proposed (one byte more).
    const rel = releaseFolder({ profile: PROFILE, version: "3.1.0" });
    const good = readFileSync(rel.file);
    const id = await propose(r, { profile: PROFILE, ...rel });
    writeFileSync(rel.file, Buffer.concat([good, Buffer.alloc(1)]));
    await approve(r, id);
    const c1 = await vigil(["update", "check", "--url", url]);
    expect(c1).toMatchObject({ code: 0, stderr: "" });
    expect(c1.stdout).toContain(`vigil update: the gateway at ${url} checks for releases now`);
    expect(c1.stdout).toMatch(new RegExp(`refused +release ${id} at .*: SIZE_MISMATCH`));

    // Asked again: it checks, and does not try the failed release again.
    const c2 = await vigil(["update", "check", "--url", url, "--json"]);
    expect(c2.code).toBe(0);
    const j = JSON.parse(c2.stdout) as {
      done: boolean;
      status: { model: { counters: { checks: number; rejected: Record<string, number> } } };
    };
    expect(j.done).toBe(true);
    expect(j.status.model.counters.rejected).toEqual({ SIZE_MISMATCH: 1 });
    expect(agent.counters.checks).toBeGreaterThanOrEqual(3);

    // Fixed at the source; the operator retries the last failure while engines stream.
    writeFileSync(rel.file, good);
    const run = engines(rt.embedded!.url, 10).run();
    await expect.poll(() => rt!.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
    const rr = await vigil(["update", "retry", "--url", url, "--wait", "60"]);
    expect(rr).toMatchObject({ code: 0, stderr: "" });
    expect(rr.stdout).toContain(`vigil update: release ${id}: failure forgotten (model); checking again`);
    expect(rr.stdout).toMatch(new RegExp(`installed release ${id} \\(3001000\\)`));
    expect(`0x${rt.loop!.models[0]!.sha256}`).toBe((await r.gateway.getRelease(id))!.contentHash);
    await run;
    // What Prometheus sees of it (gateway/src/http/README.md, hardware/prometheus alerts).
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('vigil_update_rejected_total{kind="model",code="SIZE_MISMATCH"} 1\n');
    expect(metrics).toContain('vigil_update_installs_total{kind="model"} 1\n');
    expect(metrics).toContain("vigil_update_stale 0\n");
    expect(metrics).not.toContain('kind="firmware"'); // updates.firmware is off

    // Nothing failed now (the refused release is installed): retry without an id is a usage error naming what to do.
    const none = await vigil(["update", "retry", "--url", url]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      'vigil update: no failed model release to retry on this gateway; name the release: vigil update retry ID (see "vigil update retry --help")\n',
    );
  }, 120_000); // five CLI processes, a chain rig and a shadow phase: ~25 s on a quiet machine

  it("error: no gateway running, or a bad id, is one line and a non-zero exit", async () => {
    const port = await freePort();
    const dead = await vigil(["update", "check", "--url", `http://127.0.0.1:${port}`]);
    expect(dead.code).toBe(1);
    expect(dead.stdout).toBe("");
    expect(dead.stderr).toBe(
      `vigil update: no gateway answers at http://127.0.0.1:${port} (ECONNREFUSED): is it running (vigil start)? ` +
        "Otherwise pass --url, or -c with the config it runs with.\n",
    );
    const bad = await vigil(["update", "retry", "seven", "--url", `http://127.0.0.1:${port}`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'vigil update: the release id must be a decimal number, got "seven" (see "vigil update retry --help")\n',
    );
    const help = await vigil(["update", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: vigil update <command>/);
  });
});
