/**
 * Anchoring against a real anvil, including a chain outage: anvil (started with --state FILE
 * --state-interval 1) is stopped while frames keep arriving and batches keep being sealed,
 * then restarted from its saved state on a new port; afterwards every sealed batch is
 * anchored exactly once, in order. Receipts then verify online.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Interface, JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { hashBatchHeader } from "../../gateway/src/chain/eip712.ts";
import { type Hex } from "../../gateway/src/core/hex.ts";
import { VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { ReceiptBuilder } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { AnchorService } from "../../gateway/src/anchor/service.ts";
import { connectEthersAnchorChain } from "../../gateway/src/anchor/chain.ts";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";
import { record } from "../store/abstract.ts";

const GATEWAY = ("0x" + "77".repeat(32)) as Hex;
const SITE = ("0x" + "51".repeat(32)) as Hex;

let dir: string;
let anvil: Anvil;
let url: string;
let deployment: Deployment;
let admin: EthersRegistryClient;
const stateFile = (): string => join(dir, "anvil-state.json");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-anchor-"));
  anvil = await startAnvil({ state: stateFile(), stateInterval: 1 });
  url = anvil.url;
  const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
  provider.pollingInterval = 20;
  deployment = await deployVigil(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider)), {
    adminDelaySeconds: 0,
  });
  provider.destroy();
});

afterAll(async () => {
  await admin?.close();
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const connectAdmin = (): Promise<EthersRegistryClient> =>
  EthersRegistryClient.connect({
    rpcUrl: url,
    privateKey: ANVIL_DEV_KEYS[0],
    registry: deployment.contracts.VigilRegistry.address,
    releases: deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });

describe("anchoring on anvil", () => {
  it("behavior: outage (anvil stopped, restarted from --state): every sealed batch anchored exactly once, in order; receipts verify online", async () => {
    admin = await connectAdmin();
    const signer = new GatewaySigner(generateKey("secp256k1"));
    await admin.grantOperator(SITE, admin.account);
    await admin.registerGateway({
      gatewayId: GATEWAY,
      site: SITE,
      keyType: "secp256k1",
      publicKey: signer.publicKey,
      metadataURI: "",
    });

    const store = new LevelFrameStore({
      dir: join(dir, "data"),
      reserveBytes: 0,
      freeBytes: async () => 2 ** 40,
    });
    await store.open();
    let seq = 0;
    const ingest = async (n: number): Promise<void> => {
      await Promise.all(Array.from({ length: n }, () => store.append(record(9, seq++))));
    };
    const sealer = new BatchSealer({
      store,
      signer,
      gatewayId: GATEWAY,
      domain: admin.domain(),
      maxLeaves: 50,
    });
    const sealAll = async (): Promise<void> => {
      while (await sealer.sealNow());
    };
    const service = new AnchorService({
      store,
      gatewayId: GATEWAY,
      connect: () =>
        connectEthersAnchorChain({
          rpcUrl: url, // the current anvil: a restart listens on a new port
          senderPrivateKey: ANVIL_DEV_KEYS[1],
          registry: deployment.contracts.VigilRegistry.address,
          releases: deployment.contracts.VigilReleases.address,
          confirmations: 1,
          pollingIntervalMs: 20,
        }),
      intervalMs: 100,
      backoff: { initialMs: 100, maxMs: 400 },
      maxBatchesPerTx: 4, // the backlog after the outage goes out through anchorMany
    });
    service.start();
    try {
      await ingest(200);
      await sealAll();
      service.trigger();
      await vi.waitFor(() => expect(store.anchoredThrough() === 4, "4 batches anchored").toBe(true), {
        timeout: 20_000,
        interval: 25,
      });

      // Outage: anvil stops (SIGTERM dumps its state); ingest and sealing go on.
      await admin.close();
      await anvil.stop();
      await ingest(300);
      await sealAll();
      expect(store.lastBatchSeq()).toBe(10);
      await vi.waitFor(() => expect(service.status().failures >= 2, "failed anchoring attempts").toBe(true), {
        timeout: 10_000,
        interval: 25,
      });
      expect(store.anchoredThrough()).toBe(4);
      // What anchoring cost so far is reported (metrics vigil_anchor_gas_used_total / _fee_wei_total).
      const paid = service.status();
      expect(paid.gasUsed).toBeGreaterThan(0);
      expect(BigInt(paid.feeWei) + BigInt(paid.l1FeeWei)).toBeGreaterThan(0n);
      expect(() => JSON.stringify(paid)).not.toThrow(); // the status is published as JSON

      anvil = await startAnvil({ state: stateFile(), stateInterval: 1 });
      url = anvil.url;
      await vi.waitFor(() => expect(store.anchoredThrough() === 10, "backlog anchored").toBe(true), {
        timeout: 30_000,
        interval: 25,
      });
      await service.stop();

      admin = await connectAdmin();
      expect(await admin.getHead(GATEWAY)).toEqual({ seq: 10n, head: store.lastHead() });
      // Exactly once, in order: one BatchAnchored per seq, ascending, matching the store's records.
      const iface = new Interface(VigilRegistryArtifact.abi as never);
      const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
      const ev = iface.getEvent("BatchAnchored")!;
      const logs = await provider.getLogs({
        address: deployment.contracts.VigilRegistry.address,
        topics: [ev.topicHash, GATEWAY],
        fromBlock: 0,
      });
      const seqs = logs.map((l) => Number(iface.parseLog(l)!.args.getValue("seq") as bigint));
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(new Set(logs.map((l) => l.transactionHash)).size).toBeLessThan(10); // anchorMany was used
      for (const l of logs) {
        const s = Number(iface.parseLog(l)!.args.getValue("seq") as bigint);
        const a = (await store.getAnchor(s))!;
        expect(a).toMatchObject({ txHash: l.transactionHash, blockNumber: l.blockNumber, chainId: 31337 });
      }
      provider.destroy();

      // Receipts verify online, and the contract agrees with our proofs.
      const rb = new ReceiptBuilder(store);
      const r9 = await rb.forSeq(9, 420); // batch 9
      expect(r9.batch.header.seq).toBe(9);
      const trust = {
        chainId: 31337n,
        registry: deployment.contracts.VigilRegistry.address,
        fromBlock: deployment.deployBlock,
      };
      const on = await verifyReceipt(r9, { rpcUrl: url, trust });
      expect(on).toMatchObject({ ok: true, anchored: { txHash: r9.anchor!.txHash } });
      const h10 = hashBatchHeader(toEip712Header((await store.getBatch(10))!.header));
      expect(
        await admin.isLeafIncluded(toEip712Header(r9.batch.header), [h10], r9.leaf as Hex, r9.proof as Hex[]),
      ).toBe(true);
      // The CLI on a receipt file, online.
      const file = join(dir, "r9.json");
      writeFileSync(file, JSON.stringify(r9));
      const depFile = join(dir, "deployment.json");
      writeFileSync(depFile, JSON.stringify(deployment));
      let out = "";
      const io = { out: (t: string) => void (out += t), err: (t: string) => void (out += t) };
      expect(await verifyCommand([file, "--rpc", url, "--deployment", depFile], io)).toBe(0);
      expect(out).toContain("verified offline and on chain");
      expect(out).toContain(
        `checked against registry ${deployment.contracts.VigilRegistry.address.toLowerCase()} on chain 31337`,
      );
      const r2 = await rb.forSeq(9, 60);
      const v2 = await verifyReceipt(r2, { rpcUrl: url, trust });
      expect(v2, JSON.stringify(v2)).toMatchObject({ ok: true });

      // A batch sealed but never anchored: NOT_ANCHORED online (offline still fine).
      await ingest(5);
      await sealAll();
      const r11 = await rb.forSeq(9, 502);
      expect(await verifyReceipt(r11)).toMatchObject({ ok: true });
      expect(await verifyReceipt(r11, { rpcUrl: url, trust })).toMatchObject({
        ok: false,
        reason: "NOT_ANCHORED",
      });
      // Revoked later: a receipt anchored while the key was active still verifies.
      await admin.revokeGateway(GATEWAY);
      expect(await verifyReceipt(r9, { rpcUrl: url, trust })).toMatchObject({ ok: true });
      // A wrong RPC endpoint is a CHAIN_UNREACHABLE failure, not a pass.
      expect(await verifyReceipt(r9, { rpcUrl: "http://127.0.0.1:1", trust })).toMatchObject({
        ok: false,
        reason: "CHAIN_UNREACHABLE",
      });
    } finally {
      await service.stop();
      await store.close();
    }
  }, 90_000);
});
