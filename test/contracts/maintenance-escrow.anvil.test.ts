// Vigil as a signed data oracle, end to end on a real anvil: a real gateway Runtime (embedded MQTT
// broker, LevelDB store, the committed rotating-v1 model, batch sealing, anchoring) watches a simulated
// rotating machine degrade to failure; its critical ALERT is sealed and anchored; the alert's receipt,
// built by ReceiptBuilder exactly as `vigil receipt` does, pays a VigilMaintenanceEscrow agreement once.
// The same receipt is refused for another machine, a higher severity, a replay and a revoked gateway.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import {
  Contract,
  ContractFactory,
  Interface,
  JsonRpcProvider,
  NonceManager,
  Wallet,
  id as keccakId,
  type ContractTransactionResponse,
} from "ethers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { VigilMaintenanceEscrowArtifact, VigilRegistryArtifact } from "../../contracts/artifacts/index.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import { generateKey, registrationPublicKey } from "../../gateway/src/chain/keys.ts";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { ReceiptBuilder, type AlertReceipt } from "../../gateway/src/attest/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { deployVigil, type Deployment } from "../../gateway/src/chain/deploy.ts";
import { hashBatchHeader } from "../../gateway/src/chain/eip712.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { ContractRevertError, translateEthersError } from "../../gateway/src/chain/errors.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";

const SITE = "plant-1";
const GATEWAY_NAME = "gw-escrow";
const SITE_ID = keccakId(`site:${SITE}`) as Hex;
const PAYOUT = 10n ** 17n; // 0.1 ETH
const escrowIface = new Interface(VigilMaintenanceEscrowArtifact.abi as never);
const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const ROTATING_MODELS = fileURLToPath(new URL("../../models/rotating", import.meta.url));

interface AlertMessage {
  device: string;
  state: string;
  severity: string;
  rule: { id: string };
  receipt: { leaf: string };
}

let dir: string;
let anvil: Anvil;
let provider: JsonRpcProvider;
let deployment: Deployment;
let admin: EthersRegistryClient;
let rt: Runtime | undefined;
let escrowAddress: string;
const startUs = BigInt(Date.now()) * 1000n;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-escrow-"));
  anvil = await startAnvil();
  provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 20;
  const deployer = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider));
  deployment = await deployVigil(deployer, { adminDelaySeconds: 0 });
  writeFileSync(join(dir, "deployment.json"), JSON.stringify(deployment));
  const factory = new ContractFactory(
    VigilMaintenanceEscrowArtifact.abi as never,
    VigilMaintenanceEscrowArtifact.bytecode,
    deployer,
  );
  const escrow = await factory.deploy(deployment.contracts.VigilRegistry.address);
  await escrow.waitForDeployment();
  escrowAddress = await escrow.getAddress();
  admin = await EthersRegistryClient.connect({
    rpcUrl: anvil.url,
    privateKey: ANVIL_DEV_KEYS[0],
    registry: deployment.contracts.VigilRegistry.address,
    releases: deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 20,
  });
}, 60_000);

afterAll(async () => {
  await rt?.stop();
  await admin?.close();
  provider?.destroy();
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The escrow as `key`'s account. */
function escrowAs(key: string): Contract {
  return new Contract(escrowAddress, escrowIface, new NonceManager(new Wallet(key, provider)));
}

async function send(p: Promise<ContractTransactionResponse>): Promise<void> {
  const r = await (await p).wait();
  expect(r?.status).toBe(1);
}

/** Awaits a contract call expected to revert and returns the typed error. */
async function reverted(p: Promise<unknown>): Promise<ContractRevertError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => translateEthersError(err, anvil.url, [escrowIface]),
  );
  expect(e).toBeInstanceOf(ContractRevertError);
  return e as ContractRevertError;
}

/** The agreement terms for the ALERT in `r` (device, site, rule, model), with overrides. */
async function openAgreement(
  r: AlertReceipt,
  payee: string,
  over: Partial<Record<"deviceId" | "minSeverity", number>> = {},
): Promise<bigint> {
  const client = escrowAs(ANVIL_DEV_KEYS[2]);
  const terms = {
    payee,
    site: SITE_ID,
    deviceId: over.deviceId ?? Number.parseInt(r.alert.deviceId, 16),
    minSeverity: over.minSeverity ?? 3,
    ruleHash: keccakId("failure-critical"),
    modelHash: r.alert.modelHash,
    notBeforeUs: startUs - 60_000_000n,
    expiresAt: (await admin.now()) + 86_400n,
    payout: PAYOUT,
  };
  const id = ((await client.getFunction("agreementCount").staticCall()) as bigint) + 1n;
  await send(client.getFunction("open")(terms, { value: 3n * PAYOUT }));
  return id;
}

describe("VigilMaintenanceEscrow on anvil, paid by a real gateway's alert receipt", () => {
  it("behavior: a critical alert of a degrading machine, sealed and anchored by the running gateway, pays its agreement once", async () => {
    // ---- a gateway like `vigil start`: keystore, deployment, embedded broker, rotating-v1 model
    const passphrase = randomBytes(16).toString("hex");
    const key = generateKey("secp256k1");
    await writeKeystore(join(dir, "gateway.key"), key, passphrase, { N: 1 << 14 });
    const config = resolveConfig({
      dataDir: dir,
      site: SITE,
      mqtt: { embedded: { port: 0 } },
      http: { port: 0 },
      models: { dir: ROTATING_MODELS },
      attest: { gatewayName: GATEWAY_NAME, batchIntervalMs: 300 },
      chain: { rpcUrl: anvil.url, deployment: "deployment.json", confirmations: 1, anchorIntervalMs: 200 },
      store: { minFreeBytes: 0, reserveBytes: 1024 * 1024 },
    });
    rt = new Runtime({ config, passphrase, senderKey: ANVIL_DEV_KEYS[1] });
    await admin.grantOperator(SITE_ID, admin.account);
    await admin.registerGateway({
      gatewayId: rt.gatewayId,
      site: SITE_ID,
      keyType: "secp256k1",
      publicKey: registrationPublicKey(key),
      metadataURI: "",
    });
    await rt.start();
    const url = rt.embedded!.url;

    // ---- the alerts a dashboard sees
    const alerts: AlertMessage[] = [];
    const dash = await mqtt.connectAsync(url, { clientId: "escrow-dashboard", protocolVersion: 4 });
    dash.on("message", (_t, payload) => alerts.push(JSON.parse(payload.toString()) as AlertMessage));
    await dash.subscribeAsync(`vigil/v1/${SITE}/${GATEWAY_NAME}/+/alert`, { qos: 1 });

    // ---- two rotating machines run to failure (window 1 keeps each device's frames in order)
    const sim = new Simulator({
      transport: new MqttTransport({ url, clientId: "escrow-sim" }),
      devices: 2,
      rate: 0,
      window: 1,
      meanLife: 400,
      seed: 11,
    });
    const report = await sim.run();
    expect(report.acked).toBe(report.generated);
    const critical = await vi.waitFor(
      () => {
        const a = alerts.find((m) => m.state === "raised" && m.severity === "critical");
        if (!a) throw new Error("no critical alert yet");
        return a;
      },
      { timeout: 20_000, interval: 50 },
    );
    const warning = alerts.find((m) => m.state === "raised" && m.severity === "warning");
    expect(critical.rule.id).toBe("failure-critical");
    await dash.endAsync();

    // ---- its receipt, once the gateway sealed and anchored the batch holding the ALERT leaf
    const rb = new ReceiptBuilder(rt.store);
    const anchoredReceipt = async (leaf: string): Promise<AlertReceipt> =>
      vi.waitFor(
        async () => {
          const r = await rb.forLeafHash(leaf);
          if (r.kind !== "alert" || !r.anchor) throw new Error("alert leaf not anchored yet");
          return r;
        },
        { timeout: 30_000, interval: 100 },
      );
    const receipt = await anchoredReceipt(critical.receipt.leaf);
    expect(receipt.alert).toMatchObject({ deviceId: critical.device, severity: 3, rule: "failure-critical" });
    const trust = {
      chainId: 31337n,
      registry: deployment.contracts.VigilRegistry.address,
      fromBlock: deployment.deployBlock,
      gatewayId: rt.gatewayId,
      site: SITE_ID,
    };
    expect(await verifyReceipt(receipt, { rpcUrl: anvil.url, trust })).toMatchObject({ ok: true });

    // ---- a checkpoint pins the head, so the proof stays valid while the gateway keeps anchoring
    const cp = await provider.getTransactionReceipt((await admin.checkpoint(rt.gatewayId)).txHash);
    const checkpointed = cp!.logs
      .map((l) => registryIface.parseLog(l))
      .find((e) => e?.name === "HeadCheckpointed");
    const checkpointSeq = checkpointed!.args.getValue("seq") as bigint;
    expect(checkpointSeq).toBeGreaterThanOrEqual(BigInt(receipt.batch.header.seq));
    const laterHashes = async (r: AlertReceipt): Promise<Hex[]> => {
      const out: Hex[] = [];
      for (let s = r.batch.header.seq + 1; s <= Number(checkpointSeq); s++)
        out.push(hashBatchHeader(toEip712Header((await rt!.store.getBatch(s))!.header)));
      return out;
    };
    const claimOf = async (r: AlertReceipt): Promise<unknown> => ({
      preimage: r.alert.preimage,
      header: toEip712Header(r.batch.header),
      laterHeaderHashes: await laterHashes(r),
      proof: r.proof,
    });
    const claim = await claimOf(receipt);

    // ---- the agreement pays its payee once, whoever submits the claim
    const payee = Wallet.createRandom().address;
    const id = await openAgreement(receipt, payee);
    const relayer = escrowAs(ANVIL_DEV_KEYS[3]);
    const checked = (await relayer.getFunction("check").staticCall(id, claim)) as { leaf: string };
    expect(checked.leaf).toBe(receipt.leaf);
    // The gateway keeps anchoring: if it anchors between the estimate and the claim, the proof ends at the
    // checkpoint instead of the head (one cold read, ~2,000 gas more), so the exact estimate is not enough.
    const gas = await relayer.getFunction("claim").estimateGas(id, claim);
    const tx = (await relayer.getFunction("claim")(id, claim, {
      gasLimit: gas + gas / 5n,
    })) as ContractTransactionResponse;
    const mined = await tx.wait();
    expect(mined?.status).toBe(1);
    const paid = mined!.logs.map((l) => escrowIface.parseLog(l)).find((e) => e?.name === "AlertPaid");
    expect(paid?.args.toObject()).toMatchObject({
      agreementId: id,
      leaf: receipt.leaf,
      gatewayId: rt.gatewayId,
      seq: BigInt(receipt.batch.header.seq),
      deviceId: BigInt(Number.parseInt(receipt.alert.deviceId, 16)),
      severity: 3n,
      payee,
      amount: PAYOUT,
    });
    expect(await provider.getBalance(payee)).toBe(PAYOUT);

    // ---- replay, another machine, a warning where critical is agreed
    const replay = await reverted(relayer.getFunction("claim")(id, claim));
    expect(replay.errorName).toBe("AlreadyClaimed");
    expect(replay.sentence).toBe(`alert leaf ${receipt.leaf} already paid under agreement ${id}`);
    const device = Number.parseInt(receipt.alert.deviceId, 16);
    const id2 = await openAgreement(receipt, payee, { deviceId: device + 100 });
    const wrong = await reverted(relayer.getFunction("claim")(id2, claim));
    expect(wrong).toMatchObject({
      errorName: "WrongDevice",
      args: [id2, BigInt(device + 100), BigInt(device)],
    });
    expect(warning, "the machines also raised warnings").toBeDefined();
    const wr = await anchoredReceipt(warning!.receipt.leaf);
    expect(wr.alert.severity).toBe(2);
    const id3 = await openAgreement(wr, payee);
    const low = await reverted(relayer.getFunction("claim")(id3, await claimOf(wr)));
    expect(low).toMatchObject({ errorName: "SeverityTooLow", args: [id3, 3n, 2n] });

    // ---- once the site operator revokes the gateway, its unclaimed alerts no longer pay
    await rt.stop();
    rt = undefined;
    const id4 = await openAgreement(receipt, payee);
    await relayer.getFunction("check").staticCall(id4, claim); // valid until the revocation
    await admin.revokeGateway(receipt.batch.header.gatewayId as Hex);
    const revoked = await reverted(relayer.getFunction("claim")(id4, claim));
    expect(revoked).toMatchObject({
      errorName: "GatewayNotActive",
      args: [receipt.batch.header.gatewayId, 3n],
    });
    expect(await provider.getBalance(payee)).toBe(PAYOUT);
  }, 180_000);
});
