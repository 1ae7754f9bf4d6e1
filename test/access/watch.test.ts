/**
 * The registry watch over the fake chain's events (the RPC source is covered against anvil in
 * test/access/watch.anvil.test.ts): first read from the deployment block, resume from the store's
 * cache, reorgs within and beyond the re-read depth, staleness while the chain is unreachable, and
 * a registry change reaching admission within one refresh interval of a real node-cron schedule.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { RegistryAdmission } from "../../gateway/src/access/admission.ts";
import type { ChainHead, RegistryEvent } from "../../gateway/src/chain/events.ts";
import { FakeChain, type FakeRegistryClient } from "../../gateway/src/chain/fake-client.ts";
import { FakeRegistryEvents } from "../../gateway/src/chain/fake-events.ts";
import { RegistryWatch, type WatchStatus } from "../../gateway/src/chain/watch.ts";
import { RegistryView } from "../../gateway/src/chain/registry-view.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";

const GW: Hex = `0x${"11".repeat(32)}`;
const SITE: Hex = `0x${"33".repeat(32)}`;
const OPERATOR = "0x00000000000000000000000000000000000000e1";

class CountingSource extends FakeRegistryEvents {
  readonly ranges: Array<[number, number]> = [];
  /** Blocks this endpoint is behind the chain (a lagging fallback after a failover). */
  lag = 0;
  override async head(): Promise<ChainHead> {
    const h = await super.head();
    return this.lag === 0 ? h : { number: h.number - this.lag, hash: `0x${"00".repeat(32)}` };
  }
  override async blockHash(n: number): Promise<string | undefined> {
    const top = (await super.head()).number - this.lag;
    return n > top ? undefined : super.blockHash(n);
  }
  override async events(from: number, to: number): Promise<RegistryEvent[]> {
    this.ranges.push([from, to]);
    return super.events(from, to);
  }
}

async function setup(o: { deployBlock?: number; reorgDepth?: number } = {}) {
  const chain = new FakeChain();
  const admin = chain.client(chain.admin);
  // Blocks before the deployment: never read.
  chain.block = BigInt((o.deployBlock ?? 5) - 1);
  await admin.grantOperator(SITE, OPERATOR as Hex);
  const op = chain.client(OPERATOR);
  await op.registerGateway({
    gatewayId: GW,
    site: SITE,
    keyType: "secp256k1",
    publicKey: `0x${"ab".repeat(20)}`,
    metadataURI: "",
  });
  const source = new CountingSource(chain);
  const store = new MemoryFrameStore();
  await store.open();
  const clock = new FakeClock();
  const statuses: WatchStatus[] = [];
  const make = () =>
    new RegistryWatch({
      source,
      cache: store,
      gatewayId: GW,
      chainId: "31337",
      registry: chain.registryAddress,
      deployBlock: o.deployBlock ?? 5,
      reorgDepth: o.reorgDepth ?? 2,
      maxStaleMs: 60_000,
      clock,
      onStatus: (s) => statuses.push(s),
      scheduler: () => ({ stop: () => undefined }),
    });
  return { chain, op, source, store, clock, statuses, make };
}

/** Sensor ids for filler transactions: unique across the file, never one a test registers by name. */
let nextFillerSensor = 0x1000;
const mine = async (op: FakeRegistryClient, n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await op.registerSensor(GW, nextFillerSensor++, "none", "0x");
};

let stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops) await s();
  stops = [];
});

describe("registry watch", () => {
  it("reads from the deployment block (never block 0), then only new blocks plus the re-read depth", async () => {
    const t = await setup({ deployBlock: 5, reorgDepth: 2 });
    await t.op.registerSensor(GW, 0x0a, "none", "0x");
    const w = t.make();
    await w.open();
    expect(await w.refresh()).toBe(true);
    expect(t.source.ranges[0]?.[0]).toBe(5);
    expect(w.view.sensorStatus(0x0a)).toBe("active");
    expect(w.view.gateway?.site).toBe(SITE);
    const head = Number(t.chain.block);
    await w.refresh();
    expect(t.source.ranges[1]).toEqual([head - 2 + 1, head]);
    expect(w.status()).toMatchObject({
      state: "fresh",
      headBlock: head,
      confirmedBlock: head - 2,
      refreshes: 2,
    });
  });

  it("resumes from the store's cache after a restart: the view is there before any refresh, the next read starts after the confirmed block", async () => {
    const t = await setup();
    await t.op.registerSensor(GW, 0x0a, "none", "0x");
    await mine(t.op, 4);
    const w1 = t.make();
    await w1.open();
    await w1.refresh();
    const confirmed = w1.status().confirmedBlock;
    await w1.stop();
    const w2 = t.make();
    await w2.open();
    expect(w2.view.sensorStatus(0x0a)).toBe("active");
    expect(w2.status().state).toBe("fresh");
    t.source.ranges.length = 0;
    await w2.refresh();
    expect(t.source.ranges[0]?.[0]).toBe(confirmed + 1);
  });

  it("a reorg within the re-read depth changes the view at the next refresh", async () => {
    const t = await setup({ reorgDepth: 3 });
    await mine(t.op, 3);
    const w = t.make();
    await w.open();
    await w.refresh();
    await t.op.registerSensor(GW, 0x0b, "none", "0x");
    await w.refresh();
    expect(w.view.sensorStatus(0x0b)).toBe("active");
    t.chain.reorg(1);
    await w.refresh();
    expect(w.view.sensorStatus(0x0b)).toBe("none");
    expect(w.status().reorgs).toBe(0);
  });

  it("error: a reorg deeper than the re-read depth is detected by the confirmed block's hash and the view is rebuilt from the deployment block", async () => {
    const t = await setup({ reorgDepth: 1 });
    await t.op.registerSensor(GW, 0x0b, "none", "0x");
    await mine(t.op, 3);
    const w = t.make();
    await w.open();
    await w.refresh();
    expect(w.view.sensorStatus(0x0b)).toBe("active");
    t.chain.reorg(4); // replaces the block that registered 0x0b
    t.source.ranges.length = 0;
    await w.refresh();
    expect(w.status().reorgs).toBe(1);
    expect(w.view.sensorStatus(0x0b)).toBe("none");
    expect(t.source.ranges[0]?.[0]).toBe(5);
    // The rebuilt cache is what a restart sees.
    const w2 = t.make();
    await w2.open();
    expect(w2.view.sensorStatus(0x0b)).toBe("none");
  });

  it("error: an endpoint behind the confirmed block (a lagging fallback) is not a reorg: the pass fails and the view keeps a revocation", async () => {
    const t = await setup({ reorgDepth: 1 });
    await t.op.registerSensor(GW, 0x0c, "none", "0x");
    await t.op.setSensorStatus(GW, 0x0c, "revoked");
    await mine(t.op, 4);
    const w = t.make();
    await w.open();
    await w.refresh();
    expect(w.view.sensorStatus(0x0c)).toBe("revoked");
    const confirmed = w.status().confirmedBlock;
    const head = Number(t.chain.block);
    // an endpoint one block, then three blocks, short of the confirmed block
    for (const lag of [head - confirmed + 1, head - confirmed + 3]) {
      t.source.lag = lag;
      expect(await w.refresh()).toBe(false);
      expect(w.status()).toMatchObject({ reorgs: 0 });
      expect(w.status().lastError).toMatch(/behind block \d+|does not have block \d+/);
      expect(w.view.sensorStatus(0x0c)).toBe("revoked");
    }
    t.source.lag = 0;
    expect(await w.refresh()).toBe(true);
    expect(w.view.sensorStatus(0x0c)).toBe("revoked");
  });

  it("error: events from a node that clamps at its own head, below the head the pass was given (a load-balanced backend behind): nothing is confirmed, and a revocation in the missing blocks is seen once it catches up", async () => {
    const t = await setup({ reorgDepth: 1 });
    await t.op.registerSensor(GW, 0x0d, "none", "0x");
    const w = t.make();
    await w.open();
    await w.refresh();
    const confirmed = w.status().confirmedBlock;
    await t.op.setSensorStatus(GW, 0x0d, "revoked");
    await mine(t.op, 6);
    const head = Number(t.chain.block);
    // The head from a backend at the top; events and block reads from one 4 blocks behind, which
    // clamps the range at its own head (no error), as anvil does.
    const lag = 4;
    t.source.events = async (from, to) => {
      t.source.ranges.push([from, to]);
      return FakeRegistryEvents.prototype.events.call(t.source, from, Math.min(to, head - lag));
    };
    t.source.blockHash = async (n) =>
      n > head - lag ? undefined : FakeRegistryEvents.prototype.blockHash.call(t.source, n);
    expect(await w.refresh()).toBe(false);
    expect(w.status().lastError).toMatch(/does not have block \d+, below the head/);
    expect(w.status().confirmedBlock).toBe(confirmed);
    // Caught up: the revocation in the blocks it had missed is folded in.
    t.source.events = CountingSource.prototype.events.bind(t.source);
    t.source.blockHash = CountingSource.prototype.blockHash.bind(t.source);
    expect(await w.refresh()).toBe(true);
    expect(w.view.sensorStatus(0x0d)).toBe("revoked");
    expect(w.status().confirmedBlock).toBe(head - 1);
  });

  it("error: with the chain unreachable past maxStaleMs the watch reports stale, keeps the last view, and is fresh again after a refresh", async () => {
    const t = await setup();
    await t.op.registerSensor(GW, 0x0a, "none", "0x");
    const w = t.make();
    await w.open();
    await w.refresh();
    t.source.offline = true;
    t.clock.advanceMs(30_000);
    expect(await w.refresh()).toBe(false);
    expect(w.status().state).toBe("fresh");
    t.clock.advanceMs(31_000);
    expect(w.checkStale()).toBe("stale");
    expect(w.status()).toMatchObject({ state: "stale", failures: 1 });
    expect(w.status().lastError).toMatch(/ECONNREFUSED|unreachable|network/i);
    expect(w.view.sensorStatus(0x0a)).toBe("active");
    expect(t.statuses.map((s) => s.state)).toEqual(["fresh", "stale"]);
    t.source.offline = false;
    expect(await w.refresh()).toBe(true);
    expect(w.status().state).toBe("fresh");
  });

  it("the refuse-new stale policy keeps admitted devices and refuses others while stale", async () => {
    const t = await setup();
    await t.op.registerSensor(GW, 0x0a, "none", "0x");
    await t.op.registerSensor(GW, 0x0b, "none", "0x");
    const w = t.make();
    await w.open();
    await w.refresh();
    const state = {
      get view() {
        return w.view;
      },
      get stale() {
        return w.status().state !== "fresh";
      },
    };
    const adm = new RegistryAdmission(state, "refuse-new");
    expect(adm.admit(0x0a)).toBe("ok");
    t.source.offline = true;
    t.clock.advanceMs(61_000);
    w.checkStale();
    expect(adm.admit(0x0a)).toBe("ok");
    expect(adm.admit(0x0b)).toBe("unknown");
    expect(new RegistryAdmission(state, "keep").admit(0x0b)).toBe("ok");
  });
});

/** Counts refresh passes as they start (every pass reads the head first). */
class PassCountingSource extends FakeRegistryEvents {
  started = 0;
  override async head(): Promise<ChainHead> {
    this.started++;
    return super.head();
  }
}

describe("registry watch on a real node-cron schedule", () => {
  it("a revocation reaches admission at the first refresh after it (one refresh interval), without a restart", async () => {
    const chain = new FakeChain();
    await chain.client(chain.admin).grantOperator(SITE, OPERATOR as Hex);
    const op = chain.client(OPERATOR);
    await op.registerGateway({
      gatewayId: GW,
      site: SITE,
      keyType: "secp256k1",
      publicKey: `0x${"ab".repeat(20)}`,
      metadataURI: "",
    });
    await op.registerSensor(GW, 0x0a, "none", "0x");
    const store = new MemoryFrameStore();
    await store.open();
    const source = new PassCountingSource(chain);
    /** Per completed refresh: the pass it was (in start order) and whether it showed the revocation. */
    const passes: Array<{ pass: number; revoked: boolean }> = [];
    const w = new RegistryWatch({
      source,
      cache: store,
      gatewayId: GW,
      chainId: "31337",
      registry: chain.registryAddress,
      deployBlock: 1,
      schedule: "* * * * * *",
      // Passes never overlap (refresh() shares one in flight), so the one completing is the last started.
      onRefresh: (view) =>
        passes.push({ pass: source.started, revoked: view.sensorStatus(0x0a) === "revoked" }),
    });
    stops.push(() => w.stop());
    await w.open();
    await w.refresh();
    const adm = new RegistryAdmission({
      get view() {
        return w.view;
      },
      stale: false,
    });
    expect(adm.admit(0x0a)).toBe("ok");
    w.start();
    await op.setSensorStatus(GW, 0x0a, "revoked");
    // Passes started before this point may have read the chain before the revocation.
    const startedBefore = source.started;
    // Only the schedule refreshes from here on (the timeout is a bound for a hung schedule, not a
    // measurement: timing is for benchmarks).
    await vi.waitFor(() => expect(adm.admit(0x0a)).toBe("revoked"), { timeout: 10_000, interval: 5 });
    // Within one refresh interval, counted in refreshes rather than wall time (a loaded machine may
    // run a tick late): the first pass that started after the revocation already shows it — not a
    // later one. One interval of "* * * * * *" is 1 s.
    expect(w.intervalMs).toBe(1000);
    const firstAfter = passes.find((p) => p.pass > startedBefore);
    expect(firstAfter).toEqual({ pass: startedBefore + 1, revoked: true });
  });
});

describe("RegistryView.nextGrantExpiry (when an export of the allowed readers goes out of date)", () => {
  it("is the first grant of this gateway or its site that ends after now; other sites and gateways do not count", () => {
    const me = `0x${"11".repeat(32)}` as Hex;
    const site = `0x${"22".repeat(32)}` as Hex;
    const other = `0x${"33".repeat(32)}` as Hex;
    const reader = (n: number): Hex => `0x${n.toString(16).padStart(40, "0")}` as Hex;
    const v = new RegistryView(me);
    expect(v.nextGrantExpiry(100)).toBe(Infinity);
    v.apply({
      name: "GatewayRegistered",
      gatewayId: me,
      site,
      keyType: "secp256k1",
      publicKey: `0x${"ab".repeat(20)}`,
    });
    v.apply({ name: "GatewayAccessGranted", gatewayId: me, reader: reader(1), expiresAt: 500 });
    v.apply({ name: "GatewayAccessGranted", gatewayId: other, reader: reader(2), expiresAt: 150 });
    v.apply({ name: "SiteAccessGranted", site, reader: reader(3), expiresAt: 300 });
    v.apply({ name: "SiteAccessGranted", site: other, reader: reader(4), expiresAt: 120 });
    v.apply({ name: "GatewayAccessGranted", gatewayId: me, reader: reader(5), expiresAt: 90 });
    expect(v.nextGrantExpiry(100)).toBe(300);
    expect(v.nextGrantExpiry(300)).toBe(500);
    expect(v.nextGrantExpiry(500)).toBe(Infinity);
  });
});
