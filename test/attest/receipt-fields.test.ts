/**
 * Every field of a receipt is either checked or documented as informational (RECEIPTS.md, "Field by
 * field"): a sweep changes each primitive field of anchored frame, inference, alert and sensor-fault receipts in
 * turn and expects a failure for every field not in the informational list. Then the four holes an
 * independent verifier found, one test each: anchor.contract / anchor.chainId not the pinned ones, a
 * block number without a transaction, a leafIndex that disagrees with the proof's length, and a
 * signer.address not derived from signer.publicKey.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { FakeChain } from "../../gateway/src/chain/fake-client.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder, type AnyReceipt } from "../../gateway/src/attest/receipt.ts";
import {
  INFORMATIONAL_OFFLINE,
  proofLength,
  verifyReceipt,
  type TrustAnchor,
} from "../../gateway/src/attest/verify.ts";
import { AnchorService } from "../../gateway/src/anchor/service.ts";
import { clientAnchorChain } from "../../gateway/src/anchor/chain.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { leafRecord, record, sensorFaultRecord } from "../store/abstract.ts";

const GATEWAY = ("0x" + "ab".repeat(32)) as Hex;
const SITE = ("0x" + "5e".repeat(32)) as Hex;
const ADMIN = "0x00000000000000000000000000000000000000ad";

interface Fixture {
  frame: AnyReceipt;
  /** The receipt of leaf 0 of a 41-leaf batch (its proof has 6 elements). */
  first: AnyReceipt;
  inference: AnyReceipt;
  alert: AnyReceipt;
  sensorFault: AnyReceipt;
  trust: TrustAnchor;
}

async function fixture(keyType: "secp256k1" | "p256"): Promise<Fixture> {
  const chain = new FakeChain({ admin: ADMIN });
  await chain.client(ADMIN).grantOperator(SITE, ADMIN);
  const signer = new GatewaySigner(generateKey(keyType));
  await chain.client(ADMIN).registerGateway({
    gatewayId: GATEWAY,
    site: SITE,
    keyType,
    publicKey: signer.publicKey,
    metadataURI: "",
  });
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  for (let i = 0; i < 38; i++) await store.append(record(0x2a, i));
  const inf = leafRecord(0x2a, 20, false);
  const alert = leafRecord(0x2a, 21, true);
  const fault = sensorFaultRecord(0x2a, 22);
  await store.appendLeaf(inf);
  await store.appendLeaf(alert);
  await store.appendLeaf(fault);
  const relayer = chain.client("0x00000000000000000000000000000000000000b2");
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId: GATEWAY,
    domain: relayer.domain(),
    maxLeaves: 41,
  });
  await sealer.sealNow();
  expect(store.lastBatchSeq()).toBe(1);
  const svc = new AnchorService({
    store,
    gatewayId: GATEWAY,
    connect: async () => clientAnchorChain(relayer),
  });
  expect(await svc.runOnce()).toBe(1);
  const rb = new ReceiptBuilder(store);
  return {
    frame: await rb.forSeq(0x2a, 17),
    first: await rb.forSeq(0x2a, 0),
    inference: await rb.forLeafHash(inf.hash!),
    alert: await rb.forLeafHash(alert.hash!),
    sensorFault: await rb.forLeafHash(fault.hash!),
    trust: { chainId: 31337n, registry: relayer.registryAddress, gatewayId: GATEWAY },
  };
}

/** Every primitive field: [path, value]. */
function fields(o: unknown, path: string[] = []): [string[], unknown][] {
  if (o === null || typeof o !== "object") return [[path, o]];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => fields(v, [...path, k]));
}

function mutate(v: unknown): unknown {
  if (typeof v === "number") return v + 1;
  if (typeof v === "boolean") return !v;
  if (typeof v === "string") {
    const flip = (c: string): string => (c === "0" ? "1" : "0");
    if (/^(0x)?[0-9a-fA-F]+$/.test(v)) return v.slice(0, -1) + flip(v.at(-1)!);
    return `${v}x`;
  }
  return "changed";
}

function setPath(o: unknown, path: string[], v: unknown): void {
  let x = o as Record<string, unknown>;
  for (const k of path.slice(0, -1)) x = x[k] as Record<string, unknown>;
  x[path.at(-1)!] = v;
}

/** The path with array positions folded: batch.proof.3 → batch.proof[]. */
const key = (path: string[]): string =>
  path
    .map((p) => (/^\d+$/.test(p) ? "[]" : p))
    .join(".")
    .replace(/\.\[\]/g, "[]");

describe.each(["secp256k1", "p256"] as const)("receipt fields (%s)", (keyType) => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture(keyType);
  });

  it("behavior: the fixtures verify offline against the pinned registry, chain and gateway", async () => {
    for (const r of [f.frame, f.first, f.inference, f.alert, f.sensorFault])
      expect(await verifyReceipt(r, { trust: f.trust }), r.kind).toMatchObject({
        ok: true,
        checkedAgainst: {
          registry: f.trust.registry,
          chainId: 31337,
          gatewayPinned: true,
          onChain: false,
          signer: "unchecked",
        },
      });
    // Pinning the signer's key is the offline way to tie it to the gateway.
    expect(
      await verifyReceipt(f.frame, { trust: f.trust, expectSigner: f.frame.batch.signer.publicKey }),
    ).toMatchObject({ ok: true, checkedAgainst: { signer: "pinned" } });
  });

  it("behavior: changing any field fails verification unless RECEIPTS.md lists it as informational (offline)", async () => {
    const informational = new Set<string>(INFORMATIONAL_OFFLINE);
    const seen = new Set<string>();
    for (const r of [f.frame, f.inference, f.alert, f.sensorFault]) {
      for (const [path, value] of fields(r)) {
        const k = key(path);
        if (k === "leafIndex") continue; // its own test below: the position is bounded, not committed
        seen.add(k);
        const m = structuredClone(r);
        setPath(m, path, mutate(value));
        const v = await verifyReceipt(m, { trust: f.trust });
        if (informational.has(k)) expect(v.ok, `${k} is informational`).toBe(true);
        else expect(v.ok, `${r.kind}: changing ${k} must fail`).toBe(false);
      }
    }
    // The list names only fields that exist.
    for (const k of informational) expect(seen, k).toContain(k);
  });

  it("behavior: fields RECEIPTS.md does not name are ignored, a domain.salt included (not hashed into the digest)", async () => {
    for (const r of [f.frame, f.alert]) {
      const x = structuredClone(r) as unknown as Record<string, Record<string, Record<string, unknown>>>;
      x.batch!.domain!.salt = "0x" + "11".repeat(32);
      x.batch!.note = { any: "thing" } as never;
      (x as Record<string, unknown>).verifiedBy = "someone";
      const res = await verifyReceipt(x as unknown as AnyReceipt, { trust: f.trust });
      expect(res, r.kind).toMatchObject({ ok: true });
      expect(res.ok && res.steps.find((s) => s.step === "header")?.detail).toContain(r.batch.digest);
    }
  });

  it("error: anchor.contract or anchor.chainId not the signed (and pinned) registry: ANCHOR_MISMATCH; a domain of another registry or chain: WRONG_REGISTRY / WRONG_CHAIN", async () => {
    const c = structuredClone(f.frame);
    c.anchor!.contract = "0x" + "99".repeat(20);
    expect(await verifyReceipt(c, { trust: f.trust })).toMatchObject({
      ok: false,
      reason: "ANCHOR_MISMATCH",
    });
    expect(await verifyReceipt(c)).toMatchObject({ ok: false, reason: "ANCHOR_MISMATCH" });
    const n = structuredClone(f.frame);
    n.anchor!.chainId = 10;
    expect(await verifyReceipt(n, { trust: f.trust })).toMatchObject({
      ok: false,
      reason: "ANCHOR_MISMATCH",
    });
    // Pinned to another registry or chain: the batch is not signed for it.
    expect(
      await verifyReceipt(f.frame, { trust: { ...f.trust, registry: "0x" + "99".repeat(20) } }),
    ).toMatchObject({ ok: false, reason: "WRONG_REGISTRY" });
    expect(await verifyReceipt(f.frame, { trust: { ...f.trust, chainId: 10n } })).toMatchObject({
      ok: false,
      reason: "WRONG_CHAIN",
    });
    expect(
      await verifyReceipt(f.frame, { trust: { ...f.trust, gatewayId: "0x" + "cd".repeat(32) } }),
    ).toMatchObject({ ok: false, reason: "WRONG_GATEWAY" });
  });

  it("error: a signed domain whose verifyingContract is not a 20-byte address is MALFORMED (check 1), before any hashing", async () => {
    for (const bad of ["0x1234", "0x" + "zz".repeat(20), "0x" + "44".repeat(21)]) {
      const r = structuredClone(f.frame);
      r.batch.domain.verifyingContract = bad;
      expect(await verifyReceipt(r), bad).toMatchObject({ ok: false, reason: "MALFORMED" });
    }
  });

  /** Each edit of a copy of its receipt fails verification as MALFORMED (check 1). */
  async function expectMalformed(edits: [string, AnyReceipt, (r: AnyReceipt) => void][]): Promise<void> {
    for (const [what, base, edit] of edits) {
      const r = structuredClone(base);
      edit(r);
      expect(await verifyReceipt(r, { trust: f.trust }), what).toMatchObject({
        ok: false,
        reason: "MALFORMED",
      });
    }
  }

  it("error: a domain name or version that is not a string, a leafCount of 2^32 or more (uint32), an output that is not a number: MALFORMED (check 1)", async () => {
    const edits: [string, AnyReceipt, (r: AnyReceipt) => void][] = [
      ["domain.name", f.frame, (r) => ((r.batch.domain as { name: unknown }).name = 1)],
      ["domain.version", f.frame, (r) => delete (r.batch.domain as { version?: unknown }).version],
      ["leafCount", f.frame, (r) => (r.batch.header.leafCount = 2 ** 32)],
      [
        "outputs",
        f.inference,
        (r) => ((r as { inference: { outputs: unknown[] } }).inference.outputs[0] = "1"),
      ],
    ];
    await expectMalformed(edits);
  });

  it("error: a hex field given as an array holding the right string, or an integer written -0, is MALFORMED (check 1: types), not a later check's reason", async () => {
    const wrap = (r: AnyReceipt, path: string[]): void => {
      let x = r as unknown as Record<string, unknown>;
      for (const k of path.slice(0, -1)) x = x[k] as Record<string, unknown>;
      x[path.at(-1)!] = [x[path.at(-1)!]];
    };
    const edits: [string, AnyReceipt, (r: AnyReceipt) => void][] = [
      ["frame.deviceId", f.frame, (r) => wrap(r, ["frame", "deviceId"])],
      ["header.gatewayId", f.frame, (r) => wrap(r, ["batch", "header", "gatewayId"])],
      ["header.prevHead", f.frame, (r) => wrap(r, ["batch", "header", "prevHead"])],
      ["batch.head", f.frame, (r) => wrap(r, ["batch", "head"])],
      ["inference.modelHash", f.inference, (r) => wrap(r, ["inference", "modelHash"])],
      ["leafIndex -0", f.frame, (r) => (r.leafIndex = -0)],
    ];
    await expectMalformed(edits);
  });

  it("error: a 0X prefix (upper case) is MALFORMED in every hex field (check 1); upper-case digits are accepted", async () => {
    const up = (h: string): string => `0X${h.slice(2)}`;
    const edits: [string, AnyReceipt, (r: AnyReceipt) => void][] = [
      ["leaf", f.frame, (r) => (r.leaf = up(r.leaf))],
      ["proof[0]", f.frame, (r) => (r.proof[0] = up(r.proof[0]!))],
      ["header.root", f.frame, (r) => (r.batch.header.root = up(r.batch.header.root))],
      [
        "frame.raw",
        f.frame,
        (r) =>
          ((r as { frame: { raw: string } }).frame.raw = up((r as { frame: { raw: string } }).frame.raw)),
      ],
      ["signature", f.frame, (r) => (r.batch.signature = up(r.batch.signature))],
    ];
    await expectMalformed(edits);
    const r = structuredClone(f.frame);
    r.leaf = `0x${r.leaf.slice(2).toUpperCase()}`;
    expect(await verifyReceipt(r, { trust: f.trust })).toMatchObject({ ok: true });
  });

  it("error: the same signature with s replaced by n − s (valid ECDSA, high s) is BAD_SIGNATURE", async () => {
    const n =
      keyType === "secp256k1"
        ? 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
        : 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const r = structuredClone(f.frame);
    const sig = r.batch.signature.slice(2);
    const s = BigInt("0x" + sig.slice(64, 128));
    expect(s <= n / 2n).toBe(true); // the gateway signs with low s
    const high = (n - s).toString(16).padStart(64, "0");
    // secp256k1: r‖s‖v, and the malleated form recovers with the other v
    const v = keyType === "secp256k1" ? (sig.slice(128) === "1b" ? "1c" : "1b") : "";
    r.batch.signature = `0x${sig.slice(0, 64)}${high}${v}`;
    expect(await verifyReceipt(r, { trust: f.trust })).toMatchObject({ ok: false, reason: "BAD_SIGNATURE" });
  });

  it("error: a block number (or block hash) without a transaction hash fails", async () => {
    const r = structuredClone(f.frame);
    r.anchor!.txHash = null;
    r.anchor!.blockNumber = r.anchor!.blockNumber! + 5;
    const v = await verifyReceipt(r, { trust: f.trust });
    expect(v).toMatchObject({ ok: false, reason: "ANCHOR_MISMATCH" });
    expect(v.ok || v.message).toMatch(/names a block but no transaction/);
    const h = structuredClone(f.frame);
    h.anchor!.txHash = null;
    h.anchor!.blockNumber = null;
    expect(await verifyReceipt(h, { trust: f.trust })).toMatchObject({
      ok: false,
      reason: "ANCHOR_MISMATCH",
    });
    h.anchor!.blockHash = null;
    expect(await verifyReceipt(h, { trust: f.trust })).toMatchObject({ ok: true }); // an old gateway's record
  });

  it("error: leafIndex must agree with the proof's length and the leaf count (index 40 with a 6-element proof in a 41-leaf batch)", async () => {
    expect(f.first.batch.header.leafCount).toBe(41);
    expect(f.first.leafIndex).toBe(0);
    expect(f.first.proof).toHaveLength(6);
    expect(proofLength(0, 41)).toBe(6);
    expect(proofLength(40, 41)).toBe(5);
    const r = structuredClone(f.first);
    r.leafIndex = 40;
    const v = await verifyReceipt(r, { trust: f.trust });
    expect(v).toMatchObject({ ok: false, reason: "BAD_PROOF" });
    expect(v.ok || v.message).toMatch(
      /a proof of leaf 40 in a batch of 41 leaves has 5 elements, this one has 6/,
    );
    r.leafIndex = 41;
    expect(await verifyReceipt(r, { trust: f.trust })).toMatchObject({ ok: false, reason: "BAD_PROOF" });
    // Every real receipt's proof has the length its position implies.
    for (const x of [f.frame, f.inference, f.alert, f.sensorFault])
      expect(x.proof).toHaveLength(proofLength(x.leafIndex, 41));
  });

  it("error: signer.address must be the address signer.publicKey names (secp256k1); a P-256 signer has none", async () => {
    const r = structuredClone(f.frame);
    if (keyType === "secp256k1") {
      expect(r.batch.signer.address?.toLowerCase()).toBe(r.batch.signer.publicKey);
      r.batch.signer.address = "0x" + "12".repeat(20);
      const v = await verifyReceipt(r);
      expect(v).toMatchObject({ ok: false, reason: "BAD_SIGNATURE" });
      expect(v.ok || v.message).toMatch(/is not the address of signer\.publicKey/);
      // A checksummed spelling of the right address is fine; a wrong checksum is not.
      const { getAddress } = await import("ethers");
      r.batch.signer.address = getAddress(r.batch.signer.publicKey);
      expect(await verifyReceipt(r)).toMatchObject({ ok: true });
      const bad = r.batch.signer.address.replace(/[a-f]/, (c) => c.toUpperCase());
      if (bad !== r.batch.signer.address) {
        r.batch.signer.address = bad;
        expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "BAD_SIGNATURE" });
      }
    } else {
      expect(r.batch.signer.address).toBeUndefined();
      r.batch.signer.address = "0x" + "12".repeat(20);
      expect(await verifyReceipt(r)).toMatchObject({ ok: false, reason: "BAD_SIGNATURE" });
    }
  });
});
