/**
 * The gateway's own standing in the registry, as the running gateway applies and reports it,
 * with the registry watch replaced by a hand-driven fake (its `onRefresh` is called directly) and
 * the sealer and anchor by fakes whose stops can be held:
 * - standing changes are applied one at a time, the last one winning: a resume that arrives
 *   while a suspend's sealer stop is still pending leaves sealing and anchoring running
 *   (audit-access D3: the suspend's anchor stop used to land after the resume's start);
 * - the standing, whether the gateway seals and the registry copy's freshness are in `access()`
 *   (what /metrics and /api/summary read) and in the stats line's fields and text (D2).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { EventOutput } from "../../gateway/src/alerts/service.ts";
import type { AnchorService } from "../../gateway/src/anchor/service.ts";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import type { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { RegistryView, type GatewayEntry } from "../../gateway/src/chain/registry-view.ts";
import type { RegistryWatchOptions, WatchFreshness, WatchStatus } from "../../gateway/src/chain/watch.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { bytesToHex, type Hex } from "../../gateway/src/core/hex.ts";
import { GatewayMetrics } from "../../gateway/src/http/metrics.ts";
import { LiveFeed } from "../../gateway/src/http/live.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { idleHttp } from "../http/fake-source.ts";

/** What the fake watch was built with, and the freshness it reports. */
const watchHook = vi.hoisted(() => ({
  opts: undefined as RegistryWatchOptions | undefined,
  state: "fresh" as WatchFreshness,
}));

vi.mock("../../gateway/src/chain/watch.ts", async (importOriginal) => {
  const orig = await importOriginal<typeof import("../../gateway/src/chain/watch.ts")>();
  const { RegistryView: View } = await import("../../gateway/src/chain/registry-view.ts");
  /** Opens nothing and reads no chain: the test calls `onRefresh` itself. */
  class FakeWatch {
    readonly view: RegistryView;
    constructor(o: RegistryWatchOptions) {
      watchHook.opts = o;
      this.view = new View(o.gatewayId); // no gateway entry yet: "unregistered", nothing started
    }
    status(): WatchStatus {
      return {
        state: watchHook.state,
        headBlock: 1,
        confirmedBlock: 1,
        lastRefreshMs: Date.now(),
        lastError: null,
        refreshes: 1,
        failures: 0,
        reorgs: 0,
      };
    }
    async open(): Promise<void> {}
    async refresh(): Promise<boolean> {
      return true;
    }
    start(): void {}
    async stop(): Promise<void> {}
    checkStale(): WatchFreshness {
      return watchHook.state;
    }
  }
  return { ...orig, RegistryWatch: FakeWatch };
});

const PASS = "correct horse battery staple";
let dir: string;
let rt: Runtime | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-rt-standing-"));
  watchHook.opts = undefined;
  watchHook.state = "fresh";
  await writeKeystore(join(dir, "gateway.key"), generateKey("secp256k1"), PASS, { N: 1 << 10 });
  writeFileSync(
    join(dir, "deployment.json"),
    JSON.stringify({
      format: "vigil-deployment/1",
      chainId: "31337",
      deployBlock: 7,
      contracts: {
        VigilRegistry: { address: "0x" + "44".repeat(20) },
        VigilReleases: { address: "0x" + "45".repeat(20) },
      },
    }),
  );
});
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Alerts go nowhere (no broker). */
const noOutput: EventOutput = { open: async () => {}, emit: async () => {}, close: async () => {} };

async function started(): Promise<Runtime> {
  const config = resolveConfig({
    http: { enabled: false },
    dataDir: dir,
    mqtt: { embedded: { enabled: false } },
    models: { enabled: false },
    store: { minFreeBytes: 0, reserveBytes: 0 },
    log: { statsIntervalMs: 0 },
    // Nothing listens on port 1; the real sealer and anchor are never started (see fakes()).
    chain: { rpcUrl: "http://127.0.0.1:1", deployment: "deployment.json" },
    registry: { enabled: true },
  });
  rt = new Runtime({
    config,
    passphrase: PASS,
    senderKey: bytesToHex(generateKey("secp256k1").privateKey),
    alertOutput: noOutput,
  });
  await rt.start();
  return rt;
}

/** A sealer or an anchor service: whether it runs, and every call in order. */
class FakeStage {
  running = false;
  /** While set, stop() waits for it. */
  hold: Promise<void> | undefined;
  constructor(
    readonly name: string,
    readonly calls: string[],
  ) {}
  start(): void {
    this.calls.push(`${this.name}.start`);
    this.running = true;
  }
  async stop(): Promise<void> {
    this.calls.push(`${this.name}.stop`);
    this.running = false;
    await this.hold;
  }
  backlog(): number {
    return 0;
  }
  status(): ReturnType<AnchorService["status"]> {
    return {
      anchoredThrough: 0,
      backlog: 0,
      failures: 0,
      lastError: null,
      counters: { pauses: {}, reorgs: 0 },
    } as unknown as ReturnType<AnchorService["status"]>;
  }
}

/**
 * The runtime started while "unregistered" (the fake watch's empty view), so its real sealer and
 * anchor were never started; fakes take their place, then a refresh makes the gateway active.
 */
async function activeWithFakes(
  r: Runtime,
): Promise<{ sealer: FakeStage; anchor: FakeStage; calls: string[] }> {
  expect(r.standing).toBe("unregistered");
  const calls: string[] = [];
  const sealer = new FakeStage("sealer", calls);
  const anchor = new FakeStage("anchor", calls);
  r.sealer = sealer as unknown as BatchSealer;
  r.anchor = anchor as unknown as AnchorService;
  refresh(r, "active");
  await settled();
  expect(r.standing).toBe("active");
  expect(calls).toEqual(["sealer.start", "anchor.start"]);
  calls.length = 0;
  return { sealer, anchor, calls };
}

/** The registry as the watch would hand it over: this gateway with `status`, and this key. */
function view(r: Runtime, status: GatewayEntry["status"]): RegistryView {
  const v = new RegistryView(r.gatewayId as Hex);
  v.gateway = {
    status,
    site: ("0x" + "00".repeat(32)) as Hex,
    keyType: "secp256k1",
    publicKey: r.signer!.publicKey,
    keyEpoch: 1,
  };
  return v;
}

/** One refresh that changed the view, as the watch reports it. */
function refresh(r: Runtime, status: GatewayEntry["status"]): void {
  watchHook.opts!.onRefresh!(view(r, status), true);
}

/** Every queued microtask and promise continuation has run (not a timed wait). */
const settled = (): Promise<void> => new Promise((res) => setImmediate(res));

describe("runtime: the gateway's standing in the registry", () => {
  it("error: a resume that arrives while a suspend's sealer stop is pending leaves sealing and anchoring running (the last standing wins)", async () => {
    const r = await started();
    const { sealer, anchor, calls } = await activeWithFakes(r);
    let release!: () => void;
    sealer.hold = new Promise((res) => (release = res));

    refresh(r, "suspended"); // its sealer stop hangs…
    await settled();
    refresh(r, "active"); // …while the resume comes in
    await settled();
    release();
    await settled();

    expect(r.standing).toBe("active");
    expect(calls).toEqual(["sealer.stop", "anchor.stop", "sealer.start", "anchor.start"]);
    expect(sealer.running).toBe(true);
    expect(anchor.running).toBe(true);
  });

  it("behavior: suspend, resume, revoke in one burst, with every stop held: the gateway ends stopped (the last standing wins)", async () => {
    const r = await started();
    const { sealer, anchor, calls } = await activeWithFakes(r);
    let release!: () => void;
    sealer.hold = anchor.hold = new Promise((res) => (release = res));
    refresh(r, "suspended");
    refresh(r, "active");
    refresh(r, "revoked");
    await settled();
    release();
    await settled();
    expect(r.standing).toBe("revoked");
    expect(calls.slice(-2)).toEqual(["sealer.stop", "anchor.stop"]);
    expect(sealer.running).toBe(false);
    expect(anchor.running).toBe(false);
  });

  it("error: a suspended gateway says so in access() (what /metrics and /api/summary read) and in the stats line; resumed, it seals again", async () => {
    const r = await started();
    const { sealer } = await activeWithFakes(r);
    expect(r.access()).toEqual({ standing: "active", sealing: true, registry: "fresh" });
    expect(r.statsFields().access).toEqual({ standing: "active", sealing: true, registry: "fresh" });
    expect(r.statsLine()).toMatch(/ \| standing=active registry=fresh$/);

    refresh(r, "suspended");
    watchHook.state = "stale";
    await settled();
    expect(r.access()).toEqual({ standing: "suspended", sealing: false, registry: "stale" });
    expect(r.statsFields().access).toEqual({ standing: "suspended", sealing: false, registry: "stale" });
    expect(r.statsLine()).toMatch(/ \| standing=suspended \(not sealing or anchoring\) registry=stale$/);

    refresh(r, "revoked");
    await settled();
    expect(r.access()).toMatchObject({ standing: "revoked", sealing: false });
    expect(sealer.running).toBe(false);

    // The HTTP endpoint reads it from the runtime as it is (MetricsSource).
    const text = await new GatewayMetrics({
      source: r,
      feed: new LiveFeed(),
      version: "0",
      http: idleHttp,
    }).render();
    expect(text).toMatch(/^vigil_gateway_standing\{standing="revoked"\} 1$/m);
    expect(text).toMatch(/^vigil_gateway_standing\{standing="active"\} 0$/m);
    expect(text).toMatch(/^vigil_sealer_running 0$/m);
    expect(text).toMatch(/^vigil_registry_state\{state="stale"\} 1$/m);
  });
});
