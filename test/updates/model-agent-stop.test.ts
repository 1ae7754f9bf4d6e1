/**
 * The model update agent's stop() while a release is being downloaded from a content source that
 * trickles (an IPFS HTTP gateway on 127.0.0.1 that sends headers and a first part, then nothing):
 * the stop aborts the download at once — the gateway's stop is not held up to the per-URI timeout
 * (systemd's TimeoutStopSec is 20 s) — removes the partial file, and records nothing against the
 * release: the next start fetches it again. A file:// source that would block (a FIFO nobody
 * writes: a hung mount's stand-in) fails within the timeout, so the agent is not stuck in
 * "fetching" (nor its stop with it). Real inference loop and ONNX models; the chain is
 * the FakeReleases fake behind the ReleaseSource interface.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryUpdateState, ModelUpdateAgent } from "../../gateway/src/updates/model-agent.ts";
import { FakeReleases } from "./fake-releases.ts";
import { LoopRig, liveModel } from "./rig.ts";
import { within } from "./within.ts";

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

/** An IPFS HTTP gateway on 127.0.0.1 that answers every GET with headers and 1000 bytes, then stalls. */
async function tricklingGateway(): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { "content-length": "10000000" });
    res.write(Buffer.alloc(1000, 7));
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  open.push(async () => {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

describe("model update agent: stop during a download", () => {
  it("behavior: stop() aborts the download under way at once, removes its .part and records no refusal", async () => {
    const profile = "stop-fetch";
    const live = await liveModel(profile, "3.0.0");
    const rig = new LoopRig(live, profile);
    open.push(() => rig.close());
    const gw = await tricklingGateway();
    const releases = new FakeReleases();
    await releases.add(1n, profile, "3.1.0");
    const rec = releases.releases.get(1n)!;
    rec.uris = rec.uris.filter((u) => u.startsWith("ipfs://")); // only the trickling source
    const state = new MemoryUpdateState();
    const dir = join(mkdtempSync(join(tmpdir(), "vigil-upd-stop-")), "updates");
    const agent = new ModelUpdateAgent({
      loop: rig.loop,
      releases: releases as never,
      state,
      dir,
      ipfsGateway: gw.url,
      fetchTimeoutMs: 20_000,
    });
    open.push(() => agent.stop());
    const staging = join(dir, "staging");
    const parts = (): string[] =>
      existsSync(staging) ? readdirSync(staging).filter((f) => f.endsWith(".part")) : [];

    const check = agent.check();
    await expect.poll(() => agent.status().state === "fetching" && parts().length === 1).toBe(true);
    expect(await within(agent.stop(), 3000)).toBe("resolved");
    await check;

    expect(parts()).toEqual([]);
    expect(gw.hits()).toBe(1); // neither another URI nor the manifest was tried after the stop
    expect(agent.counters.rejected).toEqual({});
    expect(agent.status()).toMatchObject({ state: "idle", lastFailure: undefined, candidate: undefined });
    expect(
      [...state.map.entries()].filter(([k, v]) => /failed|mismatch|last-failure/.test(k) && v.length > 0),
    ).toEqual([]);
    expect(rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
  });

  it("error: a file:// release that blocks (a FIFO nobody writes) ends the check within the fetch timeout as FETCH_FAILED, not remembered", async () => {
    const profile = "stop-fifo";
    const live = await liveModel(profile, "3.0.0");
    const rig = new LoopRig(live, profile);
    open.push(() => rig.close());
    const releases = new FakeReleases();
    await releases.add(1n, profile, "3.1.0");
    const fifo = join(mkdtempSync(join(tmpdir(), "vigil-upd-fifo-")), "pipe.onnx");
    execFileSync("mkfifo", [fifo]);
    // An open() still blocked (the code before the fix) ends when a writer comes and goes.
    open.push(async () => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader waiting */
      }
    });
    releases.releases.get(1n)!.uris = [pathToFileURL(fifo).href];
    const state = new MemoryUpdateState();
    const agent = new ModelUpdateAgent({
      loop: rig.loop,
      releases: releases as never,
      state,
      dir: join(mkdtempSync(join(tmpdir(), "vigil-upd-fifo-")), "updates"),
      fetchTimeoutMs: 500,
    });
    open.push(() => agent.stop());
    expect(await within(agent.check(), 5000)).toBe("resolved");
    expect(agent.status()).toMatchObject({
      state: "idle",
      lastFailure: { releaseId: "1", code: "FETCH_FAILED" },
    });
    expect(state.map.get("updates/failed/1")?.length ?? 0).toBe(0);
  });
});
