/**
 * What a hostile bundle costs the verifier on chain, counted at a recording JSON-RPC proxy in front of
 * anvil (RECEIPTS.md "Log queries"):
 * - receipts signed by a key never registered for their gateway, or naming a gateway id the registry
 *   never registered, fail from the registry's gateway events (read once per run), before any
 *   BatchAnchored lookup: 5 of them cost what 1 costs (they used to cost one full backward walk each);
 * - a genuine bundle costs one walk of those events and one query per batch (the anchor's block);
 * - a receipt repeated in a bundle fails DUPLICATE, naming both positions, and costs no request;
 * - what is left: batches signed by a registered key of the gateway but never anchored are NOT_ANCHORED
 *   after a backward walk each (pin --gateway / --site to the gateways you trust).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder, type AnyReceipt, type Bundle } from "../../gateway/src/attest/receipt.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";
import { record } from "../store/abstract.ts";
import { pipeline, startChainRig, type ChainRig } from "../anchor/chain-rig.ts";
import { startRpcProxy, type RpcProxy } from "../anchor/rpc-proxy.ts";

const GW = ("0x" + "71".repeat(32)) as Hex;
/** --log-range: small, so that one walk from the deployment block to the head takes ≈ 10 requests. */
const RANGE = 100;
let dir: string;
let rig: ChainRig;
let proxy: RpcProxy;
let genuine: Bundle;
let gatewayKey: GatewaySigner;
/** eth_getLogs of one walk from the deployment block to the head in windows of RANGE. */
let walk: number;

/** `batches` batches of 2 frames of `device`, sealed (not anchored) for `gatewayId` by `signer`: one receipt each. */
async function sealedReceipts(
  signer: GatewaySigner,
  gatewayId: Hex,
  batches: number,
  device: number,
): Promise<AnyReceipt[]> {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  for (let i = 0; i < 2 * batches; i++) await store.append(record(device, i));
  const sealer = new BatchSealer({ store, signer, gatewayId, domain: rig.admin.domain(), maxLeaves: 2 });
  while (await sealer.sealNow());
  const rb = new ReceiptBuilder(store);
  const out: AnyReceipt[] = [];
  for (let b = 0; b < batches; b++) out.push(await rb.forSeq(device, 2 * b));
  await store.close();
  return out;
}

const bundleOf = (receipts: AnyReceipt[]): Bundle =>
  ({
    format: "vigil-bundle/1",
    createdAt: new Date(0).toISOString(),
    query: { deviceId: "0000002a", fromUs: null, toUs: null },
    unsealed: 0,
    receipts,
  }) as Bundle;

interface Run {
  code: number;
  results: { receipt: string; result: { ok: boolean; reason?: string; message?: string } }[];
  getLogs: number;
  total: number;
}

/** `vigil verify BUNDLE --deployment … --rpc PROXY --log-range RANGE --json`, counting the requests. */
async function verify(name: string, receipts: AnyReceipt[]): Promise<Run> {
  const f = join(dir, `${name}.json`);
  writeFileSync(f, JSON.stringify(bundleOf(receipts)));
  proxy.seen.length = 0;
  let out = "";
  let err = "";
  const code = await verifyCommand(
    [f, "--deployment", rig.deploymentFile, "--rpc", proxy.url, "--log-range", String(RANGE), "--json"],
    { out: (s) => void (out += s), err: (s) => void (err += s) },
  );
  expect(err).toBe("");
  return {
    code,
    results: (JSON.parse(out) as { results: Run["results"] }).results,
    getLogs: proxy.seen.filter((s) => s.method === "eth_getLogs").length,
    total: proxy.seen.length,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-forged-cost-"));
  rig = await startChainRig(dir);
  gatewayKey = await rig.registerGateway(GW);
  const p = await pipeline(rig, gatewayKey, GW, { maxLeaves: 10, device: 0x2a });
  await p.ingest(30);
  await p.sealAll();
  const svc = p.service({}, { confirmations: 1 });
  expect(await svc.runOnce()).toBe(3);
  await svc.stop();
  genuine = await new ReceiptBuilder(p.store).bundle(0x2a);
  // ≈ 1,000 blocks after the anchors: every full walk takes ≈ 10 windows of RANGE.
  for (let i = 0; i < 2; i++) await rig.rpc("anvil_mine", ["0x1f4"]);
  const head = Number(BigInt(await rig.rpc<string>("eth_blockNumber")));
  walk = Math.ceil((head - rig.deployment.deployBlock + 1) / RANGE);
  expect(walk).toBeGreaterThanOrEqual(10);
  proxy = await startRpcProxy(rig.url);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await rig?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the on-chain cost of forged receipts is bounded per run", () => {
  it("behavior: a genuine bundle costs one walk of the registry's gateway events and one query per batch", async () => {
    expect(genuine.receipts).toHaveLength(30); // 3 batches of 10
    const r = await verify("genuine", genuine.receipts);
    expect(r.code).toBe(0);
    expect(r.results.every((x) => x.result.ok)).toBe(true);
    expect(r.getLogs).toBe(walk + 3);
    // Besides the logs: the pool's probe (eth_chainId, eth_blockNumber), the verifier's eth_chainId,
    // the head and the finalized block.
    expect(r.total).toBe(r.getLogs + 5);
  });

  it("error: receipts signed by a key never registered for their (registered) gateway fail WRONG_SIGNER; 5 with distinct batches cost what 1 costs", async () => {
    const forged = await sealedReceipts(new GatewaySigner(generateKey("secp256k1")), GW, 5, 0x2a);
    expect(new Set(forged.map((x) => x.batch.header.seq)).size).toBe(5);
    const one = await verify("forged-key-1", forged.slice(0, 1));
    const five = await verify("forged-key-5", forged);
    for (const r of [one, five]) {
      expect(r.code).toBe(1);
      for (const x of r.results) {
        expect(x.result).toMatchObject({ ok: false, reason: "WRONG_SIGNER" });
        expect(x.result.message).toContain(`gateway ${GW} never had secp256k1 key`);
      }
    }
    expect({ one: one.getLogs, five: five.getLogs }).toEqual({ one: walk, five: walk });
    expect(five.total).toBe(one.total);
  });

  it("error: receipts naming gateway ids the registry never registered fail KEY_REVOKED; 5 distinct ids cost what 1 costs", async () => {
    const key = new GatewaySigner(generateKey("p256"));
    const forged: AnyReceipt[] = [];
    for (let i = 0; i < 5; i++)
      forged.push(...(await sealedReceipts(key, `0x${(0xa0 + i).toString(16).repeat(32)}` as Hex, 1, 0x2a)));
    const one = await verify("forged-gw-1", forged.slice(0, 1));
    const five = await verify("forged-gw-5", forged);
    for (const r of [one, five]) {
      expect(r.code).toBe(1);
      for (const x of r.results) {
        expect(x.result).toMatchObject({ ok: false, reason: "KEY_REVOKED" });
        expect(x.result.message).toMatch(
          /^no GatewayRegistered event of gateway 0x[0-9a-f]{64} in registry /,
        );
      }
    }
    expect({ one: one.getLogs, five: five.getLogs }).toEqual({ one: walk, five: walk });
    expect(five.total).toBe(one.total);
  });

  it("behavior: forged receipts mixed into a genuine bundle add no request; the genuine ones still pass", async () => {
    // The same frames as the genuine batch 1…5 (the same leaves) under other headers: not duplicates.
    const forged = await sealedReceipts(new GatewaySigner(generateKey("secp256k1")), GW, 5, 0x2a);
    const r = await verify("mixed", [
      ...genuine.receipts.slice(0, 12),
      ...forged,
      ...genuine.receipts.slice(12),
    ]);
    expect(r.code).toBe(1);
    expect(r.results.filter((x) => x.result.ok)).toHaveLength(30);
    expect(r.results.filter((x) => !x.result.ok).map((x) => x.result.reason)).toEqual(
      Array(5).fill("WRONG_SIGNER"),
    );
    expect(r.getLogs).toBe(walk + 3);
  });

  it("error: batches signed by the gateway's registered key but never anchored are NOT_ANCHORED, one walk each", async () => {
    // Batches 4 and 5 of the gateway (1-3 are anchored), sealed by its own key and never anchored.
    const unanchored = (await sealedReceipts(gatewayKey, GW, 5, 0x2a)).slice(3);
    const r = await verify("unanchored", unanchored);
    expect(r.code).toBe(1);
    for (const x of r.results) {
      expect(x.result).toMatchObject({ ok: false, reason: "NOT_ANCHORED" });
      expect(x.result.message).toMatch(
        /^batch [45] with root 0x[0-9a-f]{64} is not anchored in the trusted registry/,
      );
    }
    expect(r.getLogs).toBe(3 * walk);
  });

  it("error: a receipt repeated in a bundle fails DUPLICATE naming both positions, costs no request, and the others are verified", async () => {
    const [a, b, c] = genuine.receipts;
    const base = await verify("three", [a!, b!, c!]);
    const r = await verify("repeated", [a!, b!, c!, structuredClone(b!)]);
    expect(r.code).toBe(1);
    expect(r.results.map((x) => x.result.ok)).toEqual([true, true, true, false]);
    expect(r.results[3]!.result).toMatchObject({ ok: false, reason: "DUPLICATE" });
    expect(r.results[3]!.result.message).toContain("receipts[3] repeats receipts[1]");
    expect({ getLogs: r.getLogs, total: r.total }).toEqual({ getLogs: base.getLogs, total: base.total });
  });
});
