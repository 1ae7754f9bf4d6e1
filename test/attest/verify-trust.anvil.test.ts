/**
 * Verification pinned to a trust anchor, against anvil:
 * - a forged registry (a second VigilRegistry with the real gateway id registered to an attacker's
 *   key, a made-up batch anchored there) is rejected when the auditor pins the real deployment;
 *   `--rpc` without a pin refuses to say "verified on chain";
 * - a rogue gateway registered in the real registry by another site's operator is rejected with
 *   --site / --gateway, and without them the output names the site it belongs to;
 * - the receipt's anchor fields are checked against the chain (ANCHOR_MISMATCH);
 * - every eth_getLogs starts at the deployment block and stays within bounded ranges, through a
 *   proxy that refuses ranges above 1,000 blocks and injects 429s and timeouts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonRpcProvider, NonceManager, Wallet, id as keccakId } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder, type AnyReceipt, type Bundle } from "../../gateway/src/attest/receipt.ts";
import { ReceiptVerifier, verifyReceipt, type TrustAnchor } from "../../gateway/src/attest/verify.ts";
import { ChainNetworkError } from "../../gateway/src/chain/errors.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { jsonFile, verifyCli } from "./verify-cli.ts";
import { connectAnchorChain, DEFAULT_FEE_CAPS } from "../../gateway/src/anchor/chain.ts";
import { AnchorService } from "../../gateway/src/anchor/service.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import { record } from "../store/abstract.ts";
import { pipeline, startChainRig, SITE_1, type ChainRig } from "../anchor/chain-rig.ts";
import { startRpcProxy, type RpcProxy } from "../anchor/rpc-proxy.ts";

const GW = ("0x" + "77".repeat(32)) as Hex;
const ROGUE_GW = ("0x" + "66".repeat(32)) as Hex;
const SITE_2 = keccakId("site:plant-2") as Hex;
let dir: string;
let rig: ChainRig;
let real: AnyReceipt;
let realBundle: Bundle;
let forged: AnyReceipt;
let forgedDomainReal: AnyReceipt;
let rogue: AnyReceipt;
let forgedDeployment: Deployment;
let proxy: RpcProxy;

const cli = verifyCli;
const file = (name: string, doc: unknown): string => jsonFile(dir, name, doc);

/** Seals and anchors 30 frames of `device` for `gatewayId` with `signer` in `registry` (a one-batch store). */
async function anchoredReceipt(
  signer: GatewaySigner,
  gatewayId: Hex,
  registry: string,
  device: number,
  domainRegistry = registry,
): Promise<{ receipt: AnyReceipt; store: MemoryFrameStore }> {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  for (let i = 0; i < 30; i++) await store.append(record(device, i));
  const sealer = new BatchSealer({
    store,
    signer,
    gatewayId,
    domain: vigilDomain(31337, domainRegistry),
    maxLeaves: 30,
  });
  await sealer.sealNow();
  if (domainRegistry === registry) {
    const svc = new AnchorService({
      store,
      gatewayId,
      connect: () =>
        connectAnchorChain({
          rpcUrls: [rig.url],
          chainId: 31337n,
          registry,
          senderPrivateKey: ANVIL_DEV_KEYS[2],
          caps: DEFAULT_FEE_CAPS,
          confirmations: 1,
          pollMs: 20,
          healthCheckIntervalMs: 0,
        }),
      confirmations: 1,
    });
    expect(await svc.runOnce()).toBe(1);
    await svc.stop();
  }
  return { receipt: await new ReceiptBuilder(store).forSeq(device, 12), store };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-trust-"));
  rig = await startChainRig(dir);
  // Thousands of blocks between deployment and anchoring, so bounded log ranges matter (anvil_mine
  // gets slower as the chain grows: 2,500 blocks in steps of 500 take ≈ 5 s here). The 10,000-block
  // default on a long chain is covered in test/anchor/logs.test.ts.
  for (let i = 0; i < 5; i++) await rig.rpc("anvil_mine", ["0x1f4"]);
  const signer = await rig.registerGateway(GW);
  const p = await pipeline(rig, signer, GW, { maxLeaves: 10, device: 0x2a });
  await p.ingest(30);
  await p.sealAll();
  const svc = p.service({}, { confirmations: 1 });
  expect(await svc.runOnce()).toBe(3);
  await svc.stop();
  await rig.rpc("anvil_mine", ["0x1f4"]);
  real = await new ReceiptBuilder(p.store).forSeq(0x2a, 12);
  realBundle = await new ReceiptBuilder(p.store).bundle(0x2a);

  // The attacker: a registry of their own, the real gateway id registered there to their key.
  const attacker = new Wallet(ANVIL_DEV_KEYS[4]);
  const provider = new JsonRpcProvider(rig.url, undefined, { staticNetwork: true });
  provider.pollingInterval = 20;
  forgedDeployment = await deployVigil(new NonceManager(attacker.connect(provider)), {
    adminDelaySeconds: 0,
  });
  provider.destroy();
  const fake = await EthersRegistryClient.connect({
    rpcUrl: rig.url,
    privateKey: ANVIL_DEV_KEYS[4],
    registry: forgedDeployment.contracts.VigilRegistry.address,
    releases: forgedDeployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });
  const attackerKey = new GatewaySigner(generateKey("secp256k1"));
  await fake.grantOperator(SITE_1, fake.account);
  await fake.registerGateway({
    gatewayId: GW,
    site: SITE_1,
    keyType: "secp256k1",
    publicKey: attackerKey.publicKey,
    metadataURI: "",
  });
  await fake.close();
  forged = (await anchoredReceipt(attackerKey, GW, forgedDeployment.contracts.VigilRegistry.address, 0x2a))
    .receipt;
  // The attacker signs for the REAL registry's domain instead (cannot be anchored there).
  forgedDomainReal = (
    await anchoredReceipt(
      attackerKey,
      GW,
      forgedDeployment.contracts.VigilRegistry.address,
      0x2a,
      rig.deployment.contracts.VigilRegistry.address,
    )
  ).receipt;

  // The rogue: another site's operator, in the REAL registry, registers a gateway of their own.
  await rig.admin.grantOperator(SITE_2, new Wallet(ANVIL_DEV_KEYS[5]).address as Hex);
  const op2 = await EthersRegistryClient.connect({
    rpcUrl: rig.url,
    privateKey: ANVIL_DEV_KEYS[5],
    registry: rig.deployment.contracts.VigilRegistry.address,
    releases: rig.deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });
  const rogueKey = new GatewaySigner(generateKey("p256"));
  await op2.registerGateway({
    gatewayId: ROGUE_GW,
    site: SITE_2,
    keyType: "p256",
    publicKey: rogueKey.publicKey,
    metadataURI: "",
  });
  await op2.close();
  rogue = (await anchoredReceipt(rogueKey, ROGUE_GW, rig.deployment.contracts.VigilRegistry.address, 0x2a))
    .receipt;
  proxy = await startRpcProxy(rig.url, { maxLogRange: 1000 });
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await rig?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("vigil verify pins its trust anchor", () => {
  it("behavior: the real receipt verifies on chain against the real deployment and names registry, chain, gateway and site", async () => {
    const r = await cli([
      file("real.json", real),
      "--deployment",
      rig.deploymentFile,
      "--rpc",
      rig.url,
      "--site",
      SITE_1,
      "--gateway",
      GW,
    ]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain("verified offline and on chain");
    expect(r.out).toContain(
      `checked against registry ${rig.deployment.contracts.VigilRegistry.address.toLowerCase()} on chain 31337 (${rig.deploymentFile}); gateway ${GW} (pinned); site ${SITE_1} (pinned); signer key (the gateway's registered key when the batch was anchored)`,
    );
  });

  it("behavior: offline, a pinned --site is named as not checked (only the chain knows a gateway's site)", async () => {
    const r = await cli([file("real.json", real), "--deployment", rig.deploymentFile, "--site", "plant-9"]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain("verified offline");
    expect(r.out).toMatch(/site 0x[0-9a-f]{64} plant-9 \(pinned, not checked offline: --rpc\)/);
    // Offline nothing ties the signer to the registry: the output says so.
    expect(r.out).toContain(
      "signer key (not checked offline: any key passes; --rpc, or pin it with --signer)",
    );
    // The hint names what is missing: with a trust anchor only --rpc; without one, both (--rpc
    // alone is refused, exit 2).
    expect(r.out).toContain("the receipt claims an anchor: add --rpc URL to check it on chain");
    const bare = await cli([file("real.json", real)]);
    expect(bare.out).toContain(
      "the receipt claims an anchor: add --deployment FILE (or --registry ADDR --chain-id ID) and --rpc URL to check it on chain",
    );
  });

  it("error: an RPC endpoint of another chain is WRONG_CHAIN, not CHAIN_UNREACHABLE; listed before a good endpoint, it is passed over", async () => {
    const other = await startAnvil({ chainId: 10 });
    try {
      const f = file("real.json", real);
      const wrong = await cli([f, "--deployment", rig.deploymentFile, "--rpc", other.url, "--json"]);
      expect(wrong.code, wrong.out + wrong.err).toBe(1);
      expect(JSON.parse(wrong.out)).toMatchObject({
        results: [{ result: { reason: "WRONG_CHAIN", message: expect.stringContaining("serves chain 10") } }],
      });
      const both = await cli([f, "--deployment", rig.deploymentFile, "--rpc", other.url, "--rpc", rig.url]);
      expect(both.code, both.out + both.err).toBe(0);
      expect(both.out).toContain("verified offline and on chain");
    } finally {
      await other.stop();
    }
  }, 60_000);

  it("error: --rpc without a trust anchor: offline checks run and say so, on chain is refused (exit 2)", async () => {
    const r = await cli([file("forged.json", forged), "--rpc", rig.url]);
    expect(r.code).toBe(2);
    expect(r.out).toContain("verified offline");
    expect(r.out).not.toContain("verified offline and on chain");
    expect(r.out).toContain("add --deployment FILE (or --registry ADDR --chain-id ID) and --rpc URL");
    expect(r.err).toMatch(/not checked on chain: --rpc needs a trust anchor/);
  });

  it("error: a second registry with the real gateway id registered to an attacker's key: WRONG_REGISTRY against the real deployment", async () => {
    // The forgery is self-consistent: it would verify against the registry it names…
    const self: TrustAnchor = {
      chainId: 31337n,
      registry: forgedDeployment.contracts.VigilRegistry.address,
      fromBlock: forgedDeployment.deployBlock,
    };
    expect(await verifyReceipt(forged, { trust: self, rpcUrl: rig.url })).toMatchObject({ ok: true });
    // …which is why the auditor names the registry they trust.
    const r = await cli([file("forged.json", forged), "--deployment", rig.deploymentFile, "--rpc", rig.url]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /WRONG_REGISTRY: the batch is signed for registry 0x[0-9a-fA-F]{40}, not the trusted registry/,
    );
    const off = await cli([file("forged.json", forged), "--deployment", rig.deploymentFile]);
    expect(off.code).toBe(1); // even offline
    // Signed for the real registry's domain by the attacker's key: the real registry never held that
    // key for the gateway (checked before any anchor is looked for).
    const d = await cli([
      file("forged-domain.json", forgedDomainReal),
      "--deployment",
      rig.deploymentFile,
      "--rpc",
      rig.url,
    ]);
    expect(d.code).toBe(1);
    expect(d.out).toMatch(
      new RegExp(
        `WRONG_SIGNER: gateway ${GW} never had secp256k1 key 0x[0-9a-f]{40} in registry ${rig.deployment.contracts.VigilRegistry.address.toLowerCase()} \\(blocks ${rig.deployment.deployBlock}–\\d+\\)`,
      ),
    );
  });

  it("error: a rogue gateway registered in the real registry by another site's operator: WRONG_SITE with --site, WRONG_GATEWAY with --gateway; named otherwise", async () => {
    const f = file("rogue.json", rogue);
    const open = await cli([f, "--deployment", rig.deploymentFile, "--rpc", rig.url]);
    expect(open.code).toBe(0); // a real anchor of a registered gateway — but whose?
    expect(open.out).toContain(
      `gateway ${ROGUE_GW} (not pinned: --gateway); site ${SITE_2} (as registered; not pinned: --site)`,
    );
    const site = await cli([f, "--deployment", rig.deploymentFile, "--rpc", rig.url, "--site", "plant-1"]);
    expect(site.code).toBe(1);
    expect(site.out).toContain(
      `WRONG_SITE: gateway ${ROGUE_GW} is registered at site ${SITE_2}, not the trusted site ${keccakId("site:plant-1")} (plant-1)`,
    );
    const gw = await cli([f, "--deployment", rig.deploymentFile, "--rpc", rig.url, "--gateway", GW]);
    expect(gw.code).toBe(1);
    expect(gw.out).toContain("WRONG_GATEWAY");
    // Offline too (the gateway pin needs no chain).
    expect((await cli([f, "--deployment", rig.deploymentFile, "--gateway", GW])).code).toBe(1);
  });

  it("error: the receipt's anchor fields are checked on chain: another block number, block hash or transaction is ANCHOR_MISMATCH", async () => {
    const trust: TrustAnchor = {
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      fromBlock: rig.deployment.deployBlock,
    };
    expect(await verifyReceipt(real, { trust, rpcUrl: rig.url })).toMatchObject({
      ok: true,
      anchored: {
        checked: true,
        txHash: real.anchor!.txHash,
        blockNumber: real.anchor!.blockNumber,
        finalized: true, // anvil: latest − 64
      },
    });
    // Offline the same fields are only the receipt's claim, and say so.
    const offline = await verifyReceipt(real, { trust });
    expect(offline).toMatchObject({ ok: true, anchored: { checked: false, txHash: real.anchor!.txHash } });
    expect(offline.ok && offline.anchored).not.toHaveProperty("finalized");
    const edits: [string, (r: AnyReceipt) => void][] = [
      ["blockNumber", (r) => (r.anchor!.blockNumber = r.anchor!.blockNumber! - 1)],
      // Past the head: anvil refuses the query of that block (it was CHAIN_UNREACHABLE).
      ["blockNumber", (r) => (r.anchor!.blockNumber = r.anchor!.blockNumber! + 1_000_000)],
      ["blockHash", (r) => (r.anchor!.blockHash = "0x" + "ee".repeat(32))],
      ["txHash", (r) => (r.anchor!.txHash = "0x" + "ee".repeat(32))],
    ];
    for (const [field, edit] of edits) {
      const r = structuredClone(real);
      edit(r);
      const v = await verifyReceipt(r, { trust, rpcUrl: rig.url });
      expect(v, field).toMatchObject({ ok: false, reason: "ANCHOR_MISMATCH" });
      expect(v.ok || v.message).toContain(`anchor.${field}`);
    }
  });

  it("error: once the RPC failed after its retries, the run's other receipts fail CHAIN_UNREACHABLE at once (a stuck endpoint cost each receipt the whole retry budget)", async () => {
    const trust: TrustAnchor = {
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      fromBlock: rig.deployment.deployBlock,
    };
    const asked: string[] = [];
    const rpc = {
      currentUrl: "http://127.0.0.1:1",
      close: () => undefined,
      async request<T>(method: string): Promise<T> {
        asked.push(method);
        if (method === "eth_chainId") return "0x7a69" as T;
        throw new ChainNetworkError("http://127.0.0.1:1", { reason: "no answer within 10000 ms" });
      },
    };
    const v = new ReceiptVerifier({ trust, rpc });
    const first = await v.verify(structuredClone(real));
    expect(first).toMatchObject({ ok: false, reason: "CHAIN_UNREACHABLE" });
    const n = asked.length;
    const second = await v.verify(structuredClone(real));
    expect(second).toMatchObject({ ok: false, reason: "CHAIN_UNREACHABLE" });
    expect(second.ok || second.message).toMatch(/\(earlier in this run: not asked again\)$/);
    expect(asked.length).toBe(n);
    v.close();
  });

  it("behavior: an anchor a reorg can still remove passes with a warning; --finalized / --min-confirmations refuse it (NOT_FINAL) until the chain has moved on", async () => {
    const gw = ("0x" + "33".repeat(32)) as Hex;
    const signer = await rig.registerGateway(gw);
    const { receipt } = await anchoredReceipt(
      signer,
      gw,
      rig.deployment.contracts.VigilRegistry.address,
      0x33,
    );
    const f = file("fresh.json", receipt);
    const base = [f, "--deployment", rig.deploymentFile, "--rpc", rig.url];
    const fresh = await cli(base);
    expect(fresh.code, fresh.out + fresh.err).toBe(0);
    expect(fresh.out).toContain(
      "verified offline and on chain; the anchor is not finalized yet and can still be reorganised away",
    );
    const fin = await cli([...base, "--finalized"]);
    expect(fin.code, fin.out).toBe(1);
    expect(fin.out).toMatch(/NOT_FINAL: the anchor \(block \d+\) is above the chain's finalized block \d+/);
    const deep = await cli([...base, "--min-confirmations", "40"]);
    expect(deep.code, deep.out).toBe(1);
    expect(deep.out).toMatch(
      /NOT_FINAL: the anchor \(block \d+\) has \d confirmations, fewer than the 40 required/,
    );
    // anvil finalizes latest − 64: 70 blocks later both requirements hold, and the warning is gone
    await rig.rpc("anvil_mine", ["0x46"]);
    for (const extra of [["--finalized"], ["--min-confirmations", "40"]]) {
      const r = await cli([...base, ...extra]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/ok {3}final {13}\d+ confirmations, finalized \(required: /);
      expect(r.out).not.toContain("not finalized yet");
    }
  });

  it("error: on chain, a batch signed by a key that is not the gateway's registered one is WRONG_SIGNER (offline it passes unless pinned)", async () => {
    const other = new GatewaySigner(generateKey("secp256k1"));
    const r = structuredClone(real);
    r.batch.signature = other.sign(r.batch.digest as Hex);
    r.batch.signer = { ...other.info() };
    const trust: TrustAnchor = {
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      fromBlock: rig.deployment.deployBlock,
    };
    expect(await verifyReceipt(r, { trust })).toMatchObject({ ok: true });
    const v = await verifyReceipt(r, { trust, rpcUrl: rig.url });
    expect(v).toMatchObject({ ok: false, reason: "WRONG_SIGNER" });
    expect(v.ok || v.message).toContain(`the receipt's signer is ${other.publicKey}`);
  });

  it("error: log queries that start after the gateway's registration fail KEY_REVOKED with a message naming the first block searched", async () => {
    const from = real.anchor!.blockNumber!;
    const trust: TrustAnchor = {
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      fromBlock: from,
    };
    const v = await verifyReceipt(real, { trust, rpcUrl: rig.url });
    expect(v).toMatchObject({ ok: false, reason: "KEY_REVOKED" });
    expect(v.ok || v.message).toContain(
      `no GatewayRegistered event of gateway ${GW} in registry ${trust.registry.toLowerCase()} between block ${from} and the head`,
    );
    expect(v.ok || v.message).toContain("the first block searched is after its registration (--from-block)");
  });

  it("behavior: log queries start at the deployment block, in ranges of at most 10,000 blocks, halved when the provider refuses (1,000 here), retried after 429 and timeouts", async () => {
    proxy.seen.length = 0;
    proxy.inject("429", { method: "eth_getLogs" });
    const f = file("bundle.json", realBundle);
    const r = await cli([f, "--deployment", rig.deploymentFile, "--rpc", proxy.url]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain(
      `${realBundle.receipts.length}/${realBundle.receipts.length} receipts verified offline and on chain`,
    );
    const logs = proxy.seen.filter((s) => s.method === "eth_getLogs");
    expect(logs.length).toBeGreaterThan(0);
    for (const l of logs) {
      expect(l.range![0]).toBeGreaterThanOrEqual(rig.deployment.deployBlock);
      expect(l.range![1] - l.range![0] + 1).toBeLessThanOrEqual(10_000);
    }
    expect(logs.some((l) => l.outcome === "range-refused")).toBe(true);
    expect(logs.some((l) => l.outcome === "429")).toBe(true);
    // A request that is never answered times out and is retried.
    proxy.inject("timeout", { method: "eth_getLogs" });
    const trust: TrustAnchor = {
      chainId: 31337n,
      registry: rig.deployment.contracts.VigilRegistry.address,
      fromBlock: rig.deployment.deployBlock,
    };
    expect(await verifyReceipt(rogue, { trust, rpcUrl: proxy.url, rpcTimeoutMs: 300 })).toMatchObject({
      ok: true,
    });
    expect(proxy.seen.some((l) => l.outcome === "timeout")).toBe(true);
    // Once refused, the walk keeps to what the provider accepts.
    const firstRefused = logs.findIndex((l) => l.outcome === "range-refused");
    for (const l of logs.slice(firstRefused + 1).filter((x) => x.outcome === "forwarded"))
      expect(l.range![1] - l.range![0] + 1).toBeLessThanOrEqual(1000);
  }, 120_000);

  it("behavior: the anchoring side (a batch already on chain is looked up, not resent) walks back from the newest block in bounded ranges", async () => {
    const signer = await rig.registerGateway(("0x" + "55".repeat(32)) as Hex);
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
    await store.open();
    for (let i = 0; i < 10; i++) await store.append(record(7, i));
    const sealer = new BatchSealer({
      store,
      signer,
      gatewayId: ("0x" + "55".repeat(32)) as Hex,
      domain: rig.admin.domain(),
      maxLeaves: 10,
    });
    const b = (await sealer.sealNow())!;
    const sent = await rig.admin.anchor(toEip712Header(b.header), b.signature as Hex); // "before a crash"
    // 1,000 more blocks: the anchor lies beyond any window the refusing provider accepts (< 1,000),
    // so the walk back takes several (mining is the slow part: several ms a block on anvil).
    await rig.rpc("anvil_mine", ["0x3e8"]);
    proxy.seen.length = 0;
    const svc = new AnchorService({
      store,
      gatewayId: ("0x" + "55".repeat(32)) as Hex,
      connect: () =>
        connectAnchorChain({
          rpcUrls: [proxy.url],
          chainId: 31337n,
          registry: rig.deployment.contracts.VigilRegistry.address,
          deployBlock: rig.deployment.deployBlock,
          senderPrivateKey: ANVIL_DEV_KEYS[2],
          caps: DEFAULT_FEE_CAPS,
          confirmations: 1,
          healthCheckIntervalMs: 0,
          pollMs: 20,
        }),
      confirmations: 1,
    });
    expect(await svc.runOnce()).toBe(1);
    await svc.stop();
    expect(await store.getAnchor(1)).toMatchObject({
      txHash: sent.txHash,
      blockNumber: Number(sent.blockNumber),
    });
    const logs = proxy.seen.filter((s) => s.method === "eth_getLogs");
    expect(
      logs.every((l) => l.range![0] >= rig.deployment.deployBlock && l.range![1] - l.range![0] < 10_000),
    ).toBe(true);
    const forwarded = logs.filter((l) => l.outcome === "forwarded");
    expect(forwarded.every((l) => l.range![1] - l.range![0] < 1000)).toBe(true);
    // It walked back more than one window to find the anchor.
    expect(forwarded.length).toBeGreaterThanOrEqual(2);
    expect(Math.min(...forwarded.map((l) => l.range![0]))).toBeLessThanOrEqual(Number(sent.blockNumber));
    expect(proxy.seen.some((s) => s.method === "eth_sendRawTransaction")).toBe(false);
  }, 120_000);
});
