import { describe, expect, it } from "vitest";
import { FakeChain, type FakeRegistryClient } from "../../gateway/src/chain/fake-client.ts";
import { ChainNetworkError } from "../../gateway/src/chain/errors.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import type { Timers } from "../../gateway/src/core/timers.ts";
import { AnchorService, AnchorStateError } from "../../gateway/src/anchor/service.ts";
import type { AnchorChain } from "../../gateway/src/anchor/chain.ts";
import { record } from "../store/abstract.ts";

const GATEWAY = ("0x" + "0a".repeat(32)) as Hex;
const SITE = ("0x" + "5e".repeat(32)) as Hex;
const ADMIN = "0x00000000000000000000000000000000000000ad";
const OPERATOR = "0x00000000000000000000000000000000000000a1";
const RELAYER = "0x00000000000000000000000000000000000000b2";

/** An AnchorChain over the fake registry whose network can be switched off, counting sends. */
class FlakyChain implements AnchorChain {
  down = false;
  sends = 0;
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  constructor(readonly client: FakeRegistryClient) {
    this.chainId = client.chainId;
    this.registryAddress = client.registryAddress;
  }
  private check(): void {
    if (this.down) throw new ChainNetworkError("http://127.0.0.1:1", { cause: new Error("ECONNREFUSED") });
  }
  async anchor(...a: Parameters<AnchorChain["anchor"]>) {
    this.check();
    this.sends++;
    return this.client.anchor(...a);
  }
  async anchorMany(...a: Parameters<NonNullable<AnchorChain["anchorMany"]>>) {
    this.check();
    this.sends++;
    return this.client.anchorMany(...a);
  }
  async getHead(g: Hex) {
    this.check();
    return this.client.getHead(g);
  }
  async close() {}
}

async function setup(keyType: "secp256k1" | "p256" = "secp256k1") {
  const chain = new FakeChain({ admin: ADMIN });
  await chain.client(ADMIN).grantOperator(SITE, OPERATOR);
  const signer = new GatewaySigner(generateKey(keyType));
  await chain.client(OPERATOR).registerGateway({
    gatewayId: GATEWAY,
    site: SITE,
    keyType,
    publicKey: signer.publicKey,
    metadataURI: "",
  });
  const relayer = chain.client(RELAYER);
  const flaky = new FlakyChain(relayer);
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  let seq = 0;
  const ingest = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await store.append(record(1, seq++));
  };
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId: GATEWAY,
    domain: relayer.domain(),
    maxLeaves: 10,
  });
  let connects = 0;
  const service = (timers?: Timers) =>
    new AnchorService({
      store,
      gatewayId: GATEWAY,
      connect: async () => {
        connects++;
        return flaky;
      },
      confirmations: 2,
      random: () => 0.5,
      ...(timers ? { timers } : {}),
    });
  return { chain, flaky, store, sealer, ingest, service, signer, connects: () => connects };
}

async function sealAll(sealer: BatchSealer): Promise<void> {
  while (await sealer.sealNow());
}

describe("AnchorService with the fake registry", () => {
  it.each(["secp256k1", "p256"] as const)(
    "behavior: anchors every sealed batch in order exactly once and records where (%s)",
    async (kt) => {
      const t = await setup(kt);
      await t.ingest(35);
      await sealAll(t.sealer);
      expect(t.store.lastBatchSeq()).toBe(4);
      const s = t.service();
      expect(await s.runOnce()).toBe(4);
      expect(t.flaky.sends).toBe(4);
      expect(await s.runOnce()).toBe(0);
      expect(t.flaky.sends).toBe(4);
      const head = await t.flaky.getHead(GATEWAY);
      expect(head).toEqual({ seq: 4n, head: t.store.lastHead() });
      const a = (await t.store.getAnchor(3))!;
      expect(a).toMatchObject({ chainId: 31337, contract: t.flaky.registryAddress, confirmations: 2 });
      expect(a.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      expect(a.blockNumber).toBeGreaterThan(0);
      // A receipt now carries the anchor and still verifies offline.
      const r = await new ReceiptBuilder(t.store).forSeq(1, 25);
      expect(r.anchor).toEqual(a);
      expect(await verifyReceipt(r)).toMatchObject({ ok: true, anchored: { txHash: a.txHash } });
    },
  );

  it("behavior: chain outage: ingest and sealing go on, backlog is anchored in order when it returns", async () => {
    const t = await setup();
    const s = t.service();
    await t.ingest(10);
    await sealAll(t.sealer);
    expect(await s.runOnce()).toBe(1);
    t.flaky.down = true;
    for (let round = 0; round < 3; round++) {
      await t.ingest(20);
      await sealAll(t.sealer);
      await expect(s.runOnce()).rejects.toBeInstanceOf(ChainNetworkError);
    }
    expect(s.status()).toMatchObject({
      anchoredThrough: 1,
      backlog: 6,
      failures: 3,
      lastError: { code: "CHAIN_NETWORK" },
    });
    expect(t.connects()).toBe(3); // the connection is dropped after each network failure…
    t.flaky.down = false;
    expect(await s.runOnce()).toBe(6);
    expect(t.connects()).toBe(4); // …and opened again on the next run
    expect(s.status()).toMatchObject({ anchoredThrough: 7, backlog: 0, failures: 0, lastError: null });
    expect(t.flaky.sends).toBe(7);
    expect((await t.flaky.getHead(GATEWAY)).seq).toBe(7n);
  });

  it("behavior: a batch sent just before a crash is recorded, not sent again", async () => {
    const t = await setup();
    await t.ingest(20);
    await sealAll(t.sealer);
    const b1 = (await t.store.getBatch(1))!;
    await t.flaky.client.anchor(toEip712Header(b1.header), b1.signature as Hex); // sent, never recorded
    const s = t.service();
    expect(await s.runOnce()).toBe(2);
    expect(t.flaky.sends).toBe(1); // only batch 2
    expect(await t.store.getAnchor(1)).toMatchObject({ txHash: null, blockNumber: null });
    expect((await t.store.getAnchor(2))?.txHash).toMatch(/^0x/);
  });

  it("error: a chain behind the local anchored count (reset chain) is an AnchorStateError, nothing is sent", async () => {
    const t = await setup();
    await t.ingest(20);
    await sealAll(t.sealer);
    await t.store.markAnchored(1, {
      chainId: 31337,
      contract: "0x00",
      txHash: null,
      blockNumber: null,
      confirmations: 1,
      anchoredAtUs: 0,
    });
    const s = t.service();
    await expect(s.runOnce()).rejects.toBeInstanceOf(AnchorStateError);
    expect(t.flaky.sends).toBe(0);
  });

  it("behavior: retries back off exponentially (1 s, 2 s, 4 s … capped) and resume the interval after success", async () => {
    const t = await setup();
    const delays: number[] = [];
    let pending: (() => void) | undefined;
    const timers: Timers = {
      setTimeout(fn, ms) {
        delays.push(ms);
        pending = fn;
        return 1;
      },
      clearTimeout() {
        pending = undefined;
      },
    };
    const s = t.service(timers);
    await t.ingest(10);
    await sealAll(t.sealer);
    t.flaky.down = true;
    s.start();
    const step = async (): Promise<void> => {
      const f = pending!;
      pending = undefined;
      f();
      for (let i = 0; i < 20 && !pending; i++) await new Promise((r) => setImmediate(r));
    };
    for (let i = 0; i < 5; i++) await step();
    expect(delays).toEqual([0, 1000, 2000, 4000, 8000, 16000]);
    t.flaky.down = false;
    await step();
    expect(delays.at(-1)).toBe(5000);
    expect(t.store.anchoredThrough()).toBe(1);
    await s.stop();
  });

  it("behavior: with a node-cron schedule, batches sealed later are anchored on the next tick", async () => {
    const t = await setup();
    const s = new AnchorService({
      store: t.store,
      gatewayId: GATEWAY,
      connect: async () => t.flaky,
      cron: "* * * * * *",
    });
    expect(
      () =>
        new AnchorService({
          store: t.store,
          gatewayId: GATEWAY,
          connect: async () => t.flaky,
          cron: "not cron",
        }),
    ).toThrow(RangeError);
    s.start();
    await new Promise((r) => setTimeout(r, 50)); // first run: empty outbox
    await t.ingest(10);
    await sealAll(t.sealer);
    const end = Date.now() + 3000;
    while (t.store.anchoredThrough() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await s.stop();
    expect(t.store.anchoredThrough()).toBe(1);
  });

  it("behavior: maxBatchesPerTx sends a backlog several batches per transaction, still in order", async () => {
    const t = await setup();
    await t.ingest(65);
    await sealAll(t.sealer);
    expect(t.store.lastBatchSeq()).toBe(7);
    const s = new AnchorService({
      store: t.store,
      gatewayId: GATEWAY,
      connect: async () => t.flaky,
      maxBatchesPerTx: 3,
    });
    expect(await s.runOnce()).toBe(7);
    expect(t.flaky.sends).toBe(3); // 3 + 3 + 1
    expect((await t.flaky.getHead(GATEWAY)).head).toBe(t.store.lastHead());
    const a = await Promise.all([1, 2, 3, 4].map((q) => t.store.getAnchor(q)));
    expect(a[0]!.txHash).toBe(a[2]!.txHash);
    expect(a[3]!.txHash).not.toBe(a[0]!.txHash);
  });
});
