/**
 * The daily spend cap pause (RPC audit, finding 3): a `spend-cap` pause caused only by the next
 * transaction's momentary worst case (a base fee or gas estimate glitch) is re-checked at the
 * fee-cap pause's cadence (`intervalMs`) and ends without a restart; one caused by money actually
 * spent (no room left for a transaction like the last one paid) lasts until 00:00 UTC. The fake
 * registry (FakeChain) behind an AnchorChain whose worst case the test sets; timers under test
 * control.
 */
import { describe, expect, it } from "vitest";
import { FakeChain } from "../../gateway/src/chain/fake-client.ts";
import { SpendCapError } from "../../gateway/src/chain/errors.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { AnchorService, type AnchorPause } from "../../gateway/src/anchor/service.ts";
import { clientAnchorChain, type AnchorChain } from "../../gateway/src/anchor/chain.ts";
import { record } from "../store/abstract.ts";
import { manualTimers } from "./manual-timers.ts";

const GATEWAY = ("0x" + "0b".repeat(32)) as Hex;
const SITE = ("0x" + "5f".repeat(32)) as Hex;
const ADMIN = "0x00000000000000000000000000000000000000ad";
const OPERATOR = "0x00000000000000000000000000000000000000a1";
const RELAYER = "0x00000000000000000000000000000000000000b2";
/** What one anchoring transaction really costs (wei). */
const COST = 1_000_000n;
const INTERVAL_MS = 5000;

async function setup() {
  const fake = new FakeChain({ admin: ADMIN });
  await fake.client(ADMIN).grantOperator(SITE, OPERATOR);
  const signer = new GatewaySigner(generateKey("secp256k1"));
  await fake.client(OPERATOR).registerGateway({
    gatewayId: GATEWAY,
    site: SITE,
    keyType: "secp256k1",
    publicKey: signer.publicKey,
    metadataURI: "",
  });
  const relayer = fake.client(RELAYER);
  const base = clientAnchorChain(relayer);
  const t = {
    /** The next transaction's worst case as the sender would compute it (base fee × gas estimate). */
    worst: 2n * COST,
    sends: 0,
  };
  // The budget check of chain/tx-sender.ts: refuse when spent + worst case would pass the cap.
  const chain: AnchorChain = {
    ...base,
    async submit(items, o = {}) {
      if (o.budget && o.budget.spentWei + t.worst > o.budget.capWei)
        throw new SpendCapError(o.budget.spentWei, t.worst, o.budget.capWei);
      t.sends++;
      return { ...(await base.submit(items)), costWei: COST };
    },
  };
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  let seq = 0;
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId: GATEWAY,
    domain: relayer.domain(),
    maxLeaves: 10,
  });
  /** Seals one more batch. */
  const sealOne = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) await store.append(record(1, seq++));
    while (await sealer.sealNow());
  };
  const { timers, delays, step: next } = manualTimers();
  const step = async (): Promise<void> => {
    expect(await next()).toBe(true); // the service always schedules its next run
  };
  let now = Date.UTC(2026, 11, 3, 21, 0) * 1000; // 21:00 UTC: three hours before the day's spend restarts
  const pauses: (AnchorPause | null)[] = [];
  /** A service over the store (a new one is a restart), daily cap `capWei`. */
  const makeService = (capWei: bigint): AnchorService =>
    new AnchorService({
      store,
      gatewayId: GATEWAY,
      connect: async () => chain,
      confirmations: 1,
      intervalMs: INTERVAL_MS,
      maxSpendPerDayWei: capWei,
      timers,
      nowUs: () => now,
      random: () => 0.5,
      onPause: (p) => pauses.push(p),
    });
  return {
    t,
    store,
    service: makeService(10n * COST),
    makeService,
    sealOne,
    step,
    delays,
    pauses,
    setNow: (us: number) => (now = us),
  };
}

describe("AnchorService: the daily spend cap pause", () => {
  it("behavior: a worst case over the cap from a momentary reading (gas estimate 70× the usual) is re-checked every intervalMs and anchoring resumes without a restart; spend truly exhausted pauses until 00:00 UTC", async () => {
    const g = await setup();
    await g.sealOne();
    g.service.start();
    await g.step(); // batch 1: the worst case (2 × COST) fits, it costs COST
    expect(g.store.anchoredThrough()).toBe(1);
    expect(g.service.status().spentTodayWei).toBe(String(COST));

    // A glitch: the endpoint's gas estimate (or base fee) puts the next worst case at 70 × COST.
    g.t.worst = 70n * COST;
    await g.sealOne();
    await g.step();
    let st = g.service.status();
    expect(st.paused).toMatchObject({ reason: "spend-cap", untilUs: null });
    expect(st.paused!.message).toMatch(/checked again every 5 s/);
    expect(st.nextRetryMs).toBe(INTERVAL_MS); // the fee-cap pause's cadence
    expect(g.delays.at(-1)).toBe(INTERVAL_MS);
    expect(st.backlog).toBe(1);
    // Still glitched at the next check: still paused (one pause, not one per check).
    await g.step();
    expect(g.service.status().paused).toMatchObject({ reason: "spend-cap", untilUs: null });
    expect(g.t.sends).toBe(1);

    // The endpoint is honest again: the next check anchors, no restart.
    g.t.worst = 2n * COST;
    await g.step();
    st = g.service.status();
    expect(st).toMatchObject({
      paused: null,
      anchoredThrough: 2,
      backlog: 0,
      spentTodayWei: String(2n * COST),
    });
    expect(g.pauses.map((p) => p?.reason ?? null)).toEqual(["spend-cap", null]);

    // Money actually spent: 9 × COST of a 10 × COST cap leaves room for one more transaction like
    // the last one, but not for its worst case, 2 × COST ... (momentary: re-checked)
    for (let k = 3; k <= 9; k++) {
      await g.sealOne();
      await g.step();
    }
    expect(g.service.status()).toMatchObject({ anchoredThrough: 9, spentTodayWei: String(9n * COST) });
    await g.sealOne();
    await g.step();
    expect(g.service.status().paused).toMatchObject({ reason: "spend-cap", untilUs: null });
    // ... which fits once the reading is lower: the day's last transaction.
    g.t.worst = COST;
    await g.step();
    expect(g.service.status()).toMatchObject({
      paused: null,
      anchoredThrough: 10,
      spentTodayWei: String(10n * COST),
    });

    // Now the day's spend is the cap: no room for anything. Paused until 00:00 UTC, however honest
    // the readings are; nothing is sent at the checks meanwhile.
    await g.sealOne();
    await g.step();
    st = g.service.status();
    const midnight = Date.UTC(2026, 11, 4) * 1000;
    expect(st.paused).toMatchObject({ reason: "spend-cap", untilUs: midnight });
    expect(st.paused!.message).toMatch(/anchoring resumes at 00:00 UTC/);
    const sends = g.t.sends;
    await g.step();
    await g.step();
    expect(g.t.sends).toBe(sends);
    expect(g.service.status()).toMatchObject({ anchoredThrough: 10, paused: { untilUs: midnight } });

    // The next UTC day: the spend restarts at 0 and the backlog goes out.
    g.setNow(midnight + 60e6);
    await g.step();
    expect(g.service.status()).toMatchObject({
      paused: null,
      anchoredThrough: 11,
      spentTodayWei: String(COST),
    });
    await g.service.stop();
  });

  it("behavior: after a restart the last transaction's cost comes from the anchor records: spend left below it pauses until 00:00 UTC, spend left above it is re-checked", async () => {
    const g = await setup();
    for (let k = 1; k <= 9; k++) await g.sealOne();
    g.t.worst = COST;
    g.service.start();
    await g.step(); // nine batches, one per transaction: 9 × COST
    expect(g.service.status()).toMatchObject({ anchoredThrough: 9, spentTodayWei: String(9n * COST) });
    await g.service.stop();
    await g.sealOne();

    // Restarted with a cap one wei short of another COST: exhausted (the day's spend alone is
    // below the cap, but it cannot pay for a transaction like the last one).
    const midnight = Date.UTC(2026, 11, 4) * 1000;
    const tight = g.makeService(10n * COST - 1n);
    tight.start();
    await g.step();
    expect(tight.status()).toMatchObject({
      spentTodayWei: String(9n * COST),
      paused: { reason: "spend-cap", untilUs: midnight },
    });
    await tight.stop();

    // Restarted with room for one more COST, under a worst case of 2 × COST: momentary, re-checked.
    g.t.worst = 2n * COST;
    const roomy = g.makeService(10n * COST + 1n);
    roomy.start();
    await g.step();
    expect(roomy.status()).toMatchObject({
      paused: { reason: "spend-cap", untilUs: null },
      nextRetryMs: INTERVAL_MS,
    });
    g.t.worst = COST;
    await g.step();
    expect(roomy.status()).toMatchObject({ paused: null, anchoredThrough: 10 });
    await roomy.stop();
  });
});
