import { describe, expect, it, beforeAll } from "vitest";
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import { generateKey, importKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer, type SealerOptions } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder, type Receipt } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";
import { record } from "../store/abstract.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { decoded as dec } from "../helpers/frames.ts";

const GATEWAY = ("0x" + "ab".repeat(32)) as `0x${string}`;
const DOMAIN = vigilDomain(31337, "0x" + "44".repeat(20));

/** A sealer of up to 100 leaves with a fresh secp256k1 key (options override). */
function sealerOf(store: MemoryFrameStore, o: Partial<SealerOptions> = {}): BatchSealer {
  return new BatchSealer({
    store,
    signer: new GatewaySigner(generateKey("secp256k1")),
    gatewayId: GATEWAY,
    domain: DOMAIN,
    maxLeaves: 100,
    ...o,
  });
}

async function sealedStore(keyType: "secp256k1" | "p256", frames = 37, maxLeaves = 16) {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  for (let i = 0; i < frames; i++) await store.append(record(1 + (i % 3), Math.floor(i / 3)));
  const signer = new GatewaySigner(generateKey(keyType));
  let now = 1_764_000_000_000_000;
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId: GATEWAY,
    domain: DOMAIN,
    maxLeaves,
    nowUs: () => (now += 1000),
    sliceHashes: 5,
  });
  return { store, signer, sealer };
}

describe("BatchSealer", () => {
  it("behavior: seals consecutive, linked batches of at most K frames; the last partial batch on T", async () => {
    const { store, sealer } = await sealedStore("secp256k1");
    await sealer.tick(); // 37 frames, K = 16: two full batches; T not reached yet
    expect(store.lastBatchSeq()).toBe(2);
    const b1 = (await store.getBatch(1))!;
    const b2 = (await store.getBatch(2))!;
    expect(b1).toMatchObject({
      firstIndex: 1,
      lastIndex: 16,
      header: { seq: 1, leafCount: 16, prevHead: "0x" + "00".repeat(32) },
    });
    expect(b2.header.prevHead).toBe(b1.head);
    expect(b2.firstIndex).toBe(17);
    const b3 = (await sealer.sealNow())!;
    expect(b3.header).toMatchObject({ seq: 3, leafCount: 5 });
    expect(await sealer.sealNow()).toBeUndefined(); // nothing left: no empty batches
    // The stored leaves give the root that @openzeppelin/merkle-tree computes.
    const leaves = (await store.getBatchLeaves(1))!;
    const list = Array.from({ length: 16 }, (_, i) => leaves.slice(32 * i, 32 * i + 32));
    expect(SimpleMerkleTree.of(list, { sortLeaves: false }).root).toBe(b1.header.root);
    await store.close();
  });
});

describe("BatchSealer timing", () => {
  it("behavior: a partial batch is sealed once T has passed since the last seal (injected clock)", async () => {
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    for (let i = 0; i < 5; i++) await store.append(record(1, i));
    let now = 1_000_000_000;
    const sealer = sealerOf(store, { intervalMs: 10_000, nowUs: () => now });
    await sealer.tick();
    expect(store.lastBatchSeq()).toBe(0); // 5 < K and T not reached
    now += 9_999_000;
    await sealer.tick();
    expect(store.lastBatchSeq()).toBe(0);
    now += 1000;
    await sealer.tick();
    expect(store.lastBatchSeq()).toBe(1);
    expect((await store.getBatch(1))?.header.leafCount).toBe(5);
    now += 20_000_000;
    await sealer.tick(); // nothing new: no empty batch
    expect(store.lastBatchSeq()).toBe(1);
    await store.close();
  });
});

describe("receipts and verification", () => {
  let receipt: Receipt;
  let signer: GatewaySigner;
  beforeAll(async () => {
    const s = await sealedStore("secp256k1");
    await s.sealer.sealNow();
    await s.sealer.sealNow();
    signer = s.signer;
    receipt = await new ReceiptBuilder(s.store).forSeq(2, 7);
    await s.store.close();
  });

  it("behavior: a fresh receipt verifies offline, for both key types", async () => {
    const r = await verifyReceipt(receipt);
    expect(r).toMatchObject({ ok: true, anchored: null });
    expect(receipt.frame).toMatchObject({ deviceId: "00000002", seq: 7 });
    const p = await sealedStore("p256", 10, 10);
    await p.sealer.sealNow();
    const rp = await new ReceiptBuilder(p.store).forIndex(4);
    expect(rp.batch.signer.keyType).toBe("p256");
    expect(await verifyReceipt(rp)).toMatchObject({ ok: true });
    await p.store.close();
  });

  it("behavior: frames of a device's later boots (its counter restarted at 0) get receipts that verify", async () => {
    const clock = new FakeClock();
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    const ingest = new Ingest({ sink: store, clock });
    const hello = (bootId: number): Frame => ({
      type: FrameType.Hello,
      deviceId: 0x2a,
      bootId,
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: "p",
      channels: [{ name: "v", unit: 0 }],
    });
    for (const boot of [1, 2, 3]) {
      ingest.handle(dec(hello(boot)), "serial");
      for (let seq = 0; seq < 3; seq++) {
        const f: Frame = {
          type: FrameType.Data,
          deviceId: 0x2a,
          seq,
          timestampUs: clock.nowUs(),
          flags: 0,
          values: Float32Array.of(boot * 10 + seq),
        };
        expect(await ingest.handle(dec(f), "serial")).toMatchObject({ kind: "ack", seq });
      }
    }
    await sealerOf(store).sealNow();
    const builder = new ReceiptBuilder(store);
    const seqs: number[] = [];
    for (let i = 1; i <= 9; i++) {
      const r = await builder.forIndex(i);
      seqs.push(r.frame.seq);
      expect(await verifyReceipt(r)).toMatchObject({ ok: true });
    }
    // Each boot is a new block of 2^32 extended numbers: frame.seq mod 2^32 is the frame's seq.
    expect(seqs).toEqual([0, 1, 2, 2 ** 32, 2 ** 32 + 1, 2 ** 32 + 2, 2 ** 33, 2 ** 33 + 1, 2 ** 33 + 2]);
    await store.close();
  });

  const clone = (): Receipt => JSON.parse(JSON.stringify(receipt)) as Receipt;
  const flipHex = (h: string, byte: number): string => {
    const b = Buffer.from(h.slice(2), "hex");
    b[byte % b.length]! ^= 0x01;
    return "0x" + b.toString("hex");
  };

  it("error: changing any byte of the frame fails with TAMPERED_FRAME", async () => {
    const n = (receipt.frame.raw.length - 2) / 2;
    for (let i = 0; i < n; i++) {
      const r = clone();
      r.frame.raw = flipHex(r.frame.raw, i);
      const v = await verifyReceipt(r);
      expect(v.ok ? "ok" : v.reason, `byte ${i}`).toBe("TAMPERED_FRAME");
    }
    for (const k of ["seq", "receivedUs", "timestampUs"] as const) {
      const r = clone();
      r.frame[k] += 1;
      const v = await verifyReceipt(r);
      expect(v.ok ? "ok" : v.reason, k).toBe("TAMPERED_FRAME");
    }
  });

  it("error: changing any byte of the proof fails with BAD_PROOF", async () => {
    expect(receipt.proof.length).toBeGreaterThan(2);
    for (let j = 0; j < receipt.proof.length; j++)
      for (const i of [0, 13, 31]) {
        const r = clone();
        r.proof[j] = flipHex(r.proof[j]!, i);
        const v = await verifyReceipt(r);
        expect(v.ok ? "ok" : v.reason).toBe("BAD_PROOF");
      }
    const r = clone();
    r.proof.pop();
    expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "BAD_PROOF" });
  });

  it("error: changing any header field fails with TAMPERED_HEADER (root: BAD_PROOF)", async () => {
    for (const k of ["gatewayId", "prevHead", "modelHash"] as const)
      for (const i of [0, 31]) {
        const r = clone();
        r.batch.header[k] = flipHex(r.batch.header[k], i);
        expect(await verifyReceipt(r), k).toMatchObject({ ok: false, reason: "TAMPERED_HEADER" });
      }
    for (const k of ["seq", "leafCount", "firstTimestamp"] as const) {
      const r = clone();
      r.batch.header[k] -= 1;
      expect(await verifyReceipt(r), k).toMatchObject({ ok: false, reason: "TAMPERED_HEADER" });
    }
    const r = clone();
    r.batch.header.lastTimestamp += 1;
    expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "TAMPERED_HEADER" });
    const d = clone();
    d.batch.domain.chainId = 1;
    expect(await verifyReceipt(d)).toMatchObject({ ok: false, reason: "TAMPERED_HEADER" });
    const root = clone();
    root.batch.header.root = flipHex(root.batch.header.root, 5);
    expect(await verifyReceipt(root)).toMatchObject({ ok: false, reason: "BAD_PROOF" });
  });

  it("error: changing any byte of the signature fails with BAD_SIGNATURE; another signer with WRONG_SIGNER", async () => {
    for (let i = 0; i < 65; i++) {
      const r = clone();
      r.batch.signature = flipHex(r.batch.signature, i);
      const v = await verifyReceipt(r);
      expect(v.ok ? "ok" : v.reason, `byte ${i}`).toBe("BAD_SIGNATURE");
    }
    const other = new GatewaySigner(generateKey("secp256k1"));
    const r = clone();
    r.batch.signer = other.info();
    expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "BAD_SIGNATURE" });
    expect(await verifyReceipt(receipt, { expectSigner: other.publicKey })).toMatchObject({
      ok: false,
      reason: "WRONG_SIGNER",
    });
    expect(await verifyReceipt(receipt, { expectSigner: signer.publicKey })).toMatchObject({ ok: true });
  });

  it("error: malformed receipts fail with MALFORMED", async () => {
    expect(await verifyReceipt({} as Receipt)).toMatchObject({ ok: false, reason: "MALFORMED" });
    const r = clone();
    (r as unknown as { proof: unknown }).proof = "x";
    expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "MALFORMED" });
  });

  it("behavior: GatewaySigner never shows its private key (JSON, inspect, String)", async () => {
    const k = importKey("secp256k1", `0x${"0f".repeat(32)}`);
    const s = new GatewaySigner(k);
    const secret = "0f".repeat(32);
    const { inspect } = await import("node:util");
    for (const text of [JSON.stringify(s), inspect(s), String(s), JSON.stringify({ s })])
      expect(text).not.toContain(secret);
    expect(bytesToHex(s.exportKey().privateKey)).toBe("0x" + secret);
  });
});
