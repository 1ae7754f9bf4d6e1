/**
 * INFERENCE and ALERT leaves as sealed data: appended to the store between frames, sealed
 * with them, exported as receipts by leaf hash and verified like frame receipts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import {
  ReceiptBuilder,
  type AlertReceipt,
  type InferenceReceipt,
  type SensorFaultReceipt,
} from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import {
  decodeModelLeaf,
  inferenceLeafPreimage,
  leafFromPreimage,
  sensorFaultLeafPreimage,
} from "../../gateway/src/core/leaf.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import type { FrameStore } from "../../gateway/src/store/types.ts";
import { hashBatchHeader, vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { bytesToHex, type Hex } from "../../gateway/src/core/hex.ts";
import { FakeChain } from "../../gateway/src/chain/fake-client.ts";
import { clientAnchorChain, type AnchorChain } from "../../gateway/src/anchor/chain.ts";
import { AnchorService } from "../../gateway/src/anchor/service.ts";
import { receiptCommand } from "../../gateway/src/cli/receipt.ts";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";
import { leafRecord, record } from "../store/abstract.ts";

const GATEWAY = ("0x" + "ab".repeat(32)) as Hex;
const DOMAIN = vigilDomain(31337, "0x" + "44".repeat(20));
const hex = (b: Uint8Array): string => bytesToHex(b);

/** 3 devices: frames, with an INFERENCE leaf every 4th frame and an ALERT after some of them. */
async function fill(
  store: FrameStore,
  frames = 40,
  model = 0x11,
): Promise<{ alerts: string[]; inferences: string[] }> {
  const alerts: string[] = [];
  const inferences: string[] = [];
  for (let i = 0; i < frames; i++) {
    const dev = 1 + (i % 3);
    await store.append(record(dev, i));
    if (i % 4 === 3) {
      const inf = leafRecord(dev, i, false, model);
      await store.appendLeaf(inf);
      inferences.push(hex(inf.hash!));
      if (i % 8 === 7) {
        const al = leafRecord(dev, i, true, model);
        await store.appendLeaf(al);
        alerts.push(hex(al.hash!));
      }
    }
  }
  return { alerts, inferences };
}

function sealer(store: FrameStore, signer: GatewaySigner, domain = DOMAIN, maxLeaves = 16): BatchSealer {
  return new BatchSealer({ store, signer, gatewayId: GATEWAY, domain, maxLeaves, sliceHashes: 7 });
}

async function sealAll(s: BatchSealer): Promise<void> {
  while (await s.sealNow());
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const flipHex = (h: string, byte: number): string => {
  const b = Buffer.from(h.slice(2), "hex");
  b[byte % b.length]! ^= 0x01;
  return "0x" + b.toString("hex");
};

describe("inference and alert leaves in batches", () => {
  it("behavior: the sealer hashes frames and leaf records in arrival order (OpenZeppelin root), commits the shared model hash", async () => {
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    await fill(store, 40);
    const signer = new GatewaySigner(generateKey("secp256k1"));
    await sealAll(sealer(store, signer));
    const total = store.stats().lastIndex;
    expect(total).toBe(40 + 10 + 5);
    expect(store.sealedThrough()).toBe(total);
    const b1 = (await store.getBatch(1))!;
    expect(b1.header.modelHash).toBe("0x" + "11".repeat(32));
    // Recompute the leaves independently: FRAME leaves from the frames, leafFromPreimage for records.
    const packed = (await store.getBatchLeaves(1))!;
    const list = Array.from({ length: 16 }, (_, i) => hex(packed.slice(32 * i, 32 * i + 32)));
    const tree = SimpleMerkleTree.of(list, { sortLeaves: false });
    expect(tree.root).toBe(b1.header.root);
    const e4 = (await store.getLeaf(5))!; // frame 0..3, then the first INFERENCE at index 5
    expect(list[4]).toBe(hex(e4.hash));
    // Leaf records of two models in one batch: modelHash zero. A frame-only batch: the option.
    const mixed = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await mixed.open();
    await mixed.appendLeaf(leafRecord(1, 1, false, 0x11));
    await mixed.appendLeaf(leafRecord(1, 2, false, 0x22));
    await mixed.append(record(1, 1));
    const m = (await sealer(mixed, signer).sealNow())!;
    expect(m.header.modelHash).toBe("0x" + "00".repeat(32));
    await mixed.append(record(1, 2));
    expect((await sealer(mixed, signer).sealNow())!.header.modelHash).toBe("0x" + "00".repeat(32));
    await mixed.close();
    await store.close();
  });

  describe("receipts for ALERT and INFERENCE leaves", () => {
    let alert: AlertReceipt;
    let inference: InferenceReceipt;
    let store: MemoryFrameStore;
    let ids: { alerts: string[]; inferences: string[] };
    beforeAll(async () => {
      store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
      await store.open();
      ids = await fill(store, 40);
      await sealAll(sealer(store, new GatewaySigner(generateKey("p256"))));
      const rb = new ReceiptBuilder(store);
      alert = (await rb.forLeafHash(ids.alerts[2]!)) as AlertReceipt;
      inference = (await rb.forLeafHash(ids.inferences[3]!)) as InferenceReceipt;
    });
    afterAll(async () => store.close());

    it("behavior: an ALERT receipt (found by the alert's receipt.leaf) decodes its preimage and verifies offline", async () => {
      expect(alert.kind).toBe("alert");
      expect(alert.leaf).toBe(ids.alerts[2]);
      expect(alert.alert).toMatchObject({ deviceId: "00000003", severity: 2, rule: "rul-low", score: 23.25 });
      expect(alert.alert.modelHash).toBe("0x" + "11".repeat(32));
      expect(alert.alert.inputWindowHash).toBe("0x" + "17".repeat(32));
      const v = await verifyReceipt(alert);
      expect(v).toMatchObject({ ok: true, anchored: null });
      expect(v.steps.map((s) => s.step)).toEqual(["format", "leaf", "proof", "header", "signature"]);
      expect(inference.inference.outputs).toEqual([15, Math.fround(5)]);
      expect(await verifyReceipt(inference)).toMatchObject({ ok: true });
      // forEntryIndex gives the same receipt; frame receipts are unchanged.
      expect(await new ReceiptBuilder(store).forEntryIndex(alert.alert.index)).toEqual(alert);
      const fr = await new ReceiptBuilder(store).forSeq(1, 0);
      expect(fr.kind).toBe("frame");
      expect(await verifyReceipt(fr)).toMatchObject({ ok: true });
    });

    it("error: changing any byte of the preimage fails with TAMPERED_LEAF", async () => {
      const n = (alert.alert.preimage.length - 2) / 2;
      for (const r0 of [alert, inference]) {
        const x = r0.kind === "alert" ? r0.alert : r0.inference;
        const len = (x.preimage.length - 2) / 2;
        for (let i = 0; i < len; i++) {
          const r = clone(r0);
          const y = r.kind === "alert" ? r.alert : r.inference;
          y.preimage = flipHex(y.preimage, i);
          const v = await verifyReceipt(r);
          expect(v.ok ? "ok" : v.reason, `${r0.kind} byte ${i}`).toBe("TAMPERED_LEAF");
        }
      }
      expect(n).toBeGreaterThan(80);
      // Decoded fields that disagree with the preimage.
      const edits: ((r: AlertReceipt) => void)[] = [
        (r) => (r.alert.rule = "rul-high"),
        (r) => (r.alert.severity = 1),
        (r) => (r.alert.score += 1),
        (r) => (r.alert.deviceId = "00000009"),
        (r) => (r.alert.timestampUs += 1),
        (r) => (r.alert.modelHash = flipHex(r.alert.modelHash, 3)),
        (r) => (r.alert.inputWindowHash = flipHex(r.alert.inputWindowHash, 30)),
        (r) => ((r as unknown as InferenceReceipt).kind = "inference"),
      ];
      for (const edit of edits) {
        const r = clone(alert);
        edit(r);
        const v = await verifyReceipt(r);
        expect(v.ok ? "ok" : v.reason).toMatch(/TAMPERED_LEAF|MALFORMED/);
      }
      const o = clone(inference);
      o.inference.outputs[1] = 6;
      expect(await verifyReceipt(o)).toMatchObject({ ok: false, reason: "TAMPERED_LEAF" });
    });

    it("error: a forged preimage with its matching leaf fails with BAD_PROOF; a wrong leaf with TAMPERED_LEAF", async () => {
      const r = clone(inference);
      const d = decodeModelLeaf(Buffer.from(r.inference.preimage.slice(2), "hex"));
      if (d.kind !== "inference") throw new Error("expected an inference leaf");
      const forged = inferenceLeafPreimage({ ...d, outputs: [999, 1] });
      const { leafFromPreimage } = await import("../../gateway/src/core/leaf.ts");
      r.inference.preimage = hex(forged);
      r.inference.outputs = [999, 1];
      r.leaf = hex(leafFromPreimage(forged));
      expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "BAD_PROOF" });
      const w = clone(alert);
      w.leaf = flipHex(w.leaf, 0);
      expect(await verifyReceipt(w)).toMatchObject({ ok: false, reason: "TAMPERED_LEAF" });
    });

    it("error: lookups of unknown or unsealed leaves fail with precise codes", async () => {
      const rb = new ReceiptBuilder(store);
      await expect(rb.forLeafHash("0x" + "00".repeat(32))).rejects.toMatchObject({
        code: "RECEIPT_NOT_FOUND",
      });
      await expect(rb.forLeafHash("0x12")).rejects.toMatchObject({ code: "RECEIPT_BAD_QUERY" });
      const late = leafRecord(1, 999, true);
      await store.appendLeaf(late);
      await expect(rb.forLeafHash(late.hash!)).rejects.toMatchObject({ code: "RECEIPT_NOT_SEALED" });
    });
  });

  it("behavior: anchored through the in-memory fake registry, an ALERT receipt carries the anchor and the registry's isLeafIncluded accepts its proof", async () => {
    const ADMIN = "0x00000000000000000000000000000000000000ad";
    const OPERATOR = "0x00000000000000000000000000000000000000a1";
    const SITE = ("0x" + "5e".repeat(32)) as Hex;
    const chain = new FakeChain({ admin: ADMIN });
    await chain.client(ADMIN).grantOperator(SITE, OPERATOR);
    const signer = new GatewaySigner(generateKey("secp256k1"));
    await chain.client(OPERATOR).registerGateway({
      gatewayId: GATEWAY,
      site: SITE,
      keyType: "secp256k1",
      publicKey: signer.publicKey,
      metadataURI: "",
    });
    const relayer = chain.client("0x00000000000000000000000000000000000000b2");
    const adapter: AnchorChain = clientAnchorChain(relayer);
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    const ids = await fill(store, 24);
    await sealAll(sealer(store, signer, relayer.domain(), 10));
    const service = new AnchorService({
      store,
      gatewayId: GATEWAY,
      connect: async () => adapter,
      confirmations: 1,
    });
    expect(await service.runOnce()).toBe(store.lastBatchSeq());
    const r = (await new ReceiptBuilder(store).forLeafHash(ids.alerts[1]!)) as AlertReceipt;
    expect(r.anchor).not.toBeNull();
    expect(await verifyReceipt(r)).toMatchObject({ ok: true, anchored: { txHash: r.anchor!.txHash } });
    const header = toEip712Header(r.batch.header);
    // The headers sealed after this batch link it to the registry's current head.
    const later: Hex[] = [];
    for (let q = r.batch.header.seq + 1; q <= store.lastBatchSeq(); q++)
      later.push(hashBatchHeader(toEip712Header((await store.getBatch(q))!.header)));
    expect(later.length).toBeGreaterThan(0);
    expect(await relayer.isLeafIncluded(header, later, r.leaf as Hex, r.proof as Hex[])).toBe(true);
    expect(await relayer.isLeafIncluded(header, later, flipHex(r.leaf, 1) as Hex, r.proof as Hex[])).toBe(
      false,
    );
    await store.close();
  });
});

describe("vigil receipt --leaf / vigil verify on a LevelDB store", () => {
  let dir: string;
  let ids: { alerts: string[]; inferences: string[] };
  const io = () => {
    const o = { out: "", err: "" };
    return { o, io: { out: (s: string) => void (o.out += s), err: (s: string) => void (o.err += s) } };
  };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-leaves-"));
    const store = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
    await store.open();
    ids = await fill(store, 30);
    await sealAll(sealer(store, new GatewaySigner(generateKey("secp256k1"))));
    await store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("behavior: exports an ALERT receipt by leaf hash that verifies (exit 0); a tampered preimage exits 1 TAMPERED_LEAF", async () => {
    const out = join(dir, "alert.json");
    const a = io();
    expect(
      await receiptCommand(["--store", join(dir, "store"), "--leaf", ids.alerts[0]!, "--out", out], a.io),
    ).toBe(0);
    const r = JSON.parse(readFileSync(out, "utf8")) as AlertReceipt;
    expect(r).toMatchObject({ kind: "alert", leaf: ids.alerts[0] });
    const v = io();
    expect(await verifyCommand([out], v.io)).toBe(0);
    expect(v.o.out).toContain("verified offline");
    r.alert.preimage = flipHex(r.alert.preimage, 90);
    writeFileSync(out, JSON.stringify(r));
    const t = io();
    expect(await verifyCommand([out, "--json"], t.io)).toBe(1);
    expect(JSON.parse(t.o.out)).toMatchObject({
      ok: false,
      results: [{ result: { reason: "TAMPERED_LEAF" } }],
    });
    const u = io();
    expect(
      await receiptCommand(["--store", join(dir, "store"), "--leaf", "0x" + "00".repeat(32)], u.io),
    ).toBe(1);
    expect(u.o.err).toContain("no stored leaf");
    const w = io();
    expect(await receiptCommand(["--store", join(dir, "store"), "--leaf", "xyz"], w.io)).toBe(2);
  });
});

describe("SENSOR_FAULT leaves (0x04): a broken sensor is attested apart from machine alerts", () => {
  const faultLeaf = (n: number, value: number, rule: string) => {
    const preimage = sensorFaultLeafPreimage({
      modelHash: new Uint8Array(32).fill(0x11),
      inputWindowHash: new Uint8Array(32).fill(0x5f), // the FRAME leaf of the frame
      deviceId: 2,
      timestampUs: 1_764_000_000_000_000 + n * 1000,
      severity: 2,
      rule,
      score: value,
    });
    return {
      kind: "sensor-fault" as const,
      preimage,
      deviceId: 2,
      timestampUs: 1_764_000_000_000_000 + n * 1000,
      hash: leafFromPreimage(preimage),
    };
  };

  it("behavior: the ALERT layout under its own tag: decodes as sensor-fault, never as an alert", () => {
    const l = faultLeaf(1, NaN, "s9:missing");
    expect(l.preimage[0]).toBe(0x04);
    const d = decodeModelLeaf(l.preimage);
    expect(d).toMatchObject({ kind: "sensor-fault", deviceId: 2, severity: 2, rule: "s9:missing" });
    expect(d.kind === "sensor-fault" && Number.isNaN(d.score)).toBe(true);
    // Same body as an ALERT, different tag, different leaf: one can never stand for the other.
    const asAlert = Uint8Array.from(l.preimage);
    asAlert[0] = 0x03;
    expect(decodeModelLeaf(asAlert).kind).toBe("alert");
    expect(hex(leafFromPreimage(asAlert))).not.toBe(hex(l.hash));
    expect(() => decodeModelLeaf(Uint8Array.from([0x05, ...l.preimage.subarray(1)]))).toThrow(RangeError);
  });

  it("behavior: sealed with the frames, exported by leaf hash as a sensor-fault receipt that verifies; a re-tagged preimage fails", async () => {
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    try {
      for (let i = 0; i < 6; i++) await store.append(record(2, i));
      const raised = faultLeaf(6, 47.5, "s11:stuck");
      await store.appendLeaf(raised);
      await store.appendLeaf(faultLeaf(7, 47.75, "s11:stuck:clear"));
      await sealAll(sealer(store, new GatewaySigner(generateKey("p256"))));
      const r = (await new ReceiptBuilder(store).forLeafHash(hex(raised.hash))) as SensorFaultReceipt;
      expect(r.kind).toBe("sensor-fault");
      expect(r.sensorFault).toMatchObject({
        deviceId: "00000002",
        severity: 2,
        rule: "s11:stuck",
        score: 47.5,
      });
      expect(r.sensorFault.inputWindowHash).toBe("0x" + "5f".repeat(32));
      expect(await verifyReceipt(r)).toMatchObject({ ok: true });
      const forged = clone(r) as unknown as AlertReceipt & { sensorFault?: unknown };
      forged.kind = "alert";
      forged.alert = { ...r.sensorFault, preimage: "0x03" + r.sensorFault.preimage.slice(4) };
      delete forged.sensorFault;
      expect(await verifyReceipt(forged)).toMatchObject({ ok: false, reason: "TAMPERED_LEAF" });
    } finally {
      await store.close();
    }
  });

  it("error: NaN, +Inf and -Inf scores travel as JSON null and verify; a null for a finite score is TAMPERED_LEAF", async () => {
    // A device's ±Inf reading (beyond its range, PROTOCOL.md revision 1.2) is flagged `missing`
    // like NaN; its receipt must survive JSON (RFC 8259 has no NaN or Infinity).
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    try {
      for (let i = 0; i < 4; i++) await store.append(record(2, i));
      const faults = [NaN, Infinity, -Infinity, 3.5].map((v, i) => faultLeaf(4 + i, v, "s8:missing"));
      for (const l of faults) await store.appendLeaf(l);
      await sealAll(sealer(store, new GatewaySigner(generateKey("p256"))));
      const receipts = await Promise.all(
        faults.map(
          async (l) => clone(await new ReceiptBuilder(store).forLeafHash(hex(l.hash))) as SensorFaultReceipt,
        ),
      );
      expect(receipts.map((r) => r.sensorFault.score)).toEqual([null, null, null, 3.5]);
      for (const r of receipts) expect(await verifyReceipt(r)).toMatchObject({ ok: true });
      const forged = clone(receipts[3]!);
      (forged.sensorFault as { score: number | null }).score = null;
      expect(await verifyReceipt(forged)).toMatchObject({ ok: false, reason: "TAMPERED_LEAF" });
    } finally {
      await store.close();
    }
  });
});
