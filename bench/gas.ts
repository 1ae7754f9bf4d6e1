/**
 * `npm run bench -- gas`: gas of every registry operation on anvil --network optimism (RIP-7212 P-256
 * precompile), per-frame anchoring cost at 1 / 100 / 10,000 frames per batch beside a naive design that
 * stores one hash per frame (measured in the same run), whether several batches per transaction pay, and
 * the example oracle consumer (VigilMaintenanceEscrow): checking and paying an attested ALERT leaf.
 * Prints a table; the last line is one JSON object.
 */
import { createRequire } from "node:module";
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import {
  ContractFactory,
  Interface,
  JsonRpcProvider,
  NonceManager,
  Wallet,
  id as keccakId,
  keccak256,
} from "ethers";
import {
  importKey,
  registrationPublicKey,
  signDigest,
  type DeviceKey,
  type KeyType,
} from "../gateway/src/chain/keys.ts";
import { ANVIL_DEV_KEYS, startAnvil } from "../gateway/src/chain/anvil.ts";
import { deployVigil } from "../gateway/src/chain/deploy.ts";
import {
  ZERO_HASH,
  batchDigest,
  hashBatchHeader,
  headerTuple,
  nextHead,
  type BatchHeader,
} from "../gateway/src/chain/eip712.ts";
import { bytesToHex, hexToBytes, type Hex } from "../gateway/src/core/hex.ts";
import { EthersRegistryClient } from "../gateway/src/chain/ethers-client.ts";
import { alertLeafPreimage } from "../gateway/src/core/leaf.ts";
import { VigilMaintenanceEscrowArtifact, VigilRegistryArtifact } from "../contracts/artifacts/index.ts";
import { benchOptions } from "./lib/options.ts";

// No options: anything on the command line is a mistake (one line, exit 2).
benchOptions(import.meta.url, {}, () => undefined);

const NAIVE_SOURCE = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;
/// Baseline for the benchmark only: one storage slot per frame hash.
contract NaiveFrameStore {
    mapping(bytes32 => uint64) public anchoredAt;
    event FramesStored(address indexed by, uint256 count);
    function store(bytes32[] calldata frameHashes) external {
        for (uint256 i = 0; i < frameHashes.length; ++i) anchoredAt[frameHashes[i]] = uint64(block.timestamp);
        emit FramesStored(msg.sender, frameHashes.length);
    }
}`;

function compileNaive(): { abi: unknown[]; bytecode: string } {
  const solc = createRequire(import.meta.url)("solc") as { compile(s: string): string };
  const out = JSON.parse(
    solc.compile(
      JSON.stringify({
        language: "Solidity",
        sources: { "Naive.sol": { content: NAIVE_SOURCE } },
        settings: {
          evmVersion: "cancun",
          optimizer: { enabled: true, runs: 10_000 },
          outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
        },
      }),
    ),
  ) as {
    contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
  };
  const c = out.contracts["Naive.sol"]?.NaiveFrameStore;
  if (!c) throw new Error("naive contract did not compile");
  return { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
}

// Seeded, not random: calldata gas depends on the zero bytes of roots, ids and keys (4 vs 16 gas a
// byte), so random values moved the published figures by a few gas from run to run.
let drawn = 0;
const draw = (): Uint8Array => hexToBytes(keccakId(`vigil-bench-gas:${drawn++}`) as Hex);
const rand32 = (): Hex => bytesToHex(draw());
const seededKey = (type: KeyType): DeviceKey => importKey(type, draw());
const rows: { op: string; gas: bigint; note?: string }[] = [];
const record = (op: string, gas: bigint, note?: string): bigint => {
  rows.push(note === undefined ? { op, gas } : { op, gas, note });
  return gas;
};

const anvil = await startAnvil({ network: "optimism" });
try {
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 20;
  const deployer = new NonceManager(new Wallet(ANVIL_DEV_KEYS[0], provider));
  const d = await deployVigil(deployer, { adminDelaySeconds: 0, approvalThreshold: 2 });
  const connect = (k: string): Promise<EthersRegistryClient> =>
    EthersRegistryClient.connect({
      rpcUrl: anvil.url,
      privateKey: k,
      registry: d.contracts.VigilRegistry.address,
      releases: d.contracts.VigilReleases.address,
      pollingIntervalMs: 20,
    });
  const [admin, op, manager, a1, a2, relayer] = (await Promise.all(
    ANVIL_DEV_KEYS.slice(0, 6).map(connect),
  )) as EthersRegistryClient[] & { length: 6 };
  if (!admin || !op || !manager || !a1 || !a2 || !relayer) throw new Error("clients");
  const site = keccakId("site:bench") as Hex;
  await admin.grantOperator(site, op.account);
  await admin.grantRole("releaseManager", manager.account);
  await admin.grantRole("releaseApprover", a1.account);
  await admin.grantRole("releaseApprover", a2.account);

  interface Gw {
    id: Hex;
    key: DeviceKey;
    seq: bigint;
    head: Hex;
  }
  const newGw = async (type: KeyType, label: string): Promise<Gw> => {
    const key = seededKey(type);
    const id = keccakId(`${label}:${drawn++}`) as Hex;
    const r = await op.registerGateway({
      gatewayId: id,
      site,
      keyType: type,
      publicKey: registrationPublicKey(key),
      metadataURI: "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    });
    record(`registerGateway (${type})`, r.gasUsed);
    return { id, key, seq: 0n, head: ZERO_HASH };
  };
  const header = (g: Gw, leafCount = 10_000, root: Hex = rand32()): BatchHeader => ({
    gatewayId: g.id,
    seq: g.seq + 1n,
    prevHead: g.head,
    root,
    leafCount,
    firstTimestamp: 1_767_225_600_000_000n + g.seq * 60_000_000n,
    lastTimestamp: 1_767_225_600_000_000n + g.seq * 60_000_000n + 59_999_999n,
    modelHash: keccakId("model:v1") as Hex,
  });
  const sign = (g: Gw, h: BatchHeader): Hex => signDigest(g.key, batchDigest(admin.domain(), h));
  const advance = (g: Gw, h: BatchHeader): void => {
    g.head = nextHead(g.head, h);
    g.seq = h.seq;
  };
  const anchor = async (g: Gw, leafCount = 10_000, root?: Hex): Promise<{ gas: bigint; h: BatchHeader }> => {
    const h = header(g, leafCount, root);
    const r = await relayer.anchor(h, sign(g, h));
    advance(g, h);
    return { gas: r.gasUsed, h };
  };
  const median = (xs: bigint[]): bigint =>
    [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))[Math.floor(xs.length / 2)] ?? 0n;

  // ---- anchoring
  const k = await newGw("secp256k1", "k");
  const p = await newGw("p256", "p");
  record(
    "anchor first batch (secp256k1)",
    (await anchor(k)).gas,
    "head slot 0 -> non-zero, once per gateway",
  );
  record("anchor first batch (P-256)", (await anchor(p)).gas, "head slot 0 -> non-zero, once per gateway");
  const ks: bigint[] = [];
  const ps: bigint[] = [];
  for (let i = 0; i < 10; i++) {
    ks.push((await anchor(k)).gas);
    ps.push((await anchor(p)).gas);
  }
  const anchorK = record("anchor (secp256k1), median of 10", median(ks), "target <= 45,000");
  const anchorP = record("anchor (P-256, RIP-7212), median of 10", median(ps), "target <= 50,000");

  // ---- multi-batch
  const many: Record<string, number> = {};
  for (const n of [1, 2, 5, 10]) {
    const items = [];
    for (let i = 0; i < n; i++) {
      const h = header(k);
      items.push({ header: h, signature: sign(k, h) });
      advance(k, h);
    }
    const r = await relayer.anchorMany(items);
    record(`anchorMany ${n} batches, same gateway (per batch)`, r.gasUsed / BigInt(n));
    many[`sameGateway${n}`] = Number(r.gasUsed / BigInt(n));
  }
  const gws = [
    k,
    p,
    await newGw("secp256k1", "k2"),
    await newGw("secp256k1", "k3"),
    await newGw("secp256k1", "k4"),
  ];
  for (const g of gws.slice(2)) await anchor(g);
  {
    const items = gws.map((g) => {
      const h = header(g);
      const s = sign(g, h);
      advance(g, h);
      return { header: h, signature: s };
    });
    const r = await relayer.anchorMany(items);
    record("anchorMany 5 gateways (1 P-256) (per batch)", r.gasUsed / 5n);
    many.fiveGateways = Number(r.gasUsed / 5n);
  }

  // ---- inclusion views (eth_estimateGas of the view call minus the 21,000 base)
  const leaves = Array.from({ length: 10_000 }, () => rand32());
  const tree = SimpleMerkleTree.of(leaves);
  const { h: h0 } = await anchor(k, leaves.length, tree.root as Hex);
  const later: Hex[] = [];
  const iface = new Interface(VigilRegistryArtifact.abi as never);
  const viewGas = async (n: number): Promise<bigint> => {
    while (later.length < n) later.push(hashBatchHeader((await anchor(k)).h));
    if (later.length > n) throw new Error("later");
    const data = iface.encodeFunctionData("isLeafIncluded", [
      headerTuple(h0),
      later,
      leaves[1234],
      tree.getProof(1234),
    ]);
    const [ok] = iface.decodeFunctionResult(
      "isLeafIncluded",
      await provider.call({ to: d.contracts.VigilRegistry.address, data }),
    ) as unknown as [boolean];
    if (!ok) throw new Error("inclusion failed");
    return (await provider.estimateGas({ to: d.contracts.VigilRegistry.address, data })) - 21_000n;
  };
  const inclusion0 = record("isLeafIncluded, 10k-leaf tree, 0 later batches (view)", await viewGas(0));
  record("isLeafIncluded, 10 later batches (view)", await viewGas(10));
  record("isLeafIncluded, 100 later batches (view)", await viewGas(100));
  record("checkpoint", (await relayer.checkpoint(k.id)).gasUsed, "caps later batches for views");

  // ---- the example oracle consumer: VigilMaintenanceEscrow pays for an attested ALERT leaf
  const escrowClient = new NonceManager(new Wallet(ANVIL_DEV_KEYS[6], provider));
  const escrowIface = new Interface(VigilMaintenanceEscrowArtifact.abi as never);
  const escrowFactory = new ContractFactory(
    VigilMaintenanceEscrowArtifact.abi as never,
    VigilMaintenanceEscrowArtifact.bytecode,
    escrowClient,
  );
  const escrow = await (await escrowFactory.deploy(d.contracts.VigilRegistry.address)).waitForDeployment();
  const escrowAt = await escrow.getAddress();
  const alertPreimage = alertLeafPreimage({
    modelHash: draw(),
    inputWindowHash: draw(),
    deviceId: 0x2a,
    timestampUs: 1_767_225_600_000_000,
    severity: 3,
    rule: "failure-critical",
    score: 0.93,
  });
  const alertLeaves = Array.from({ length: 10_000 }, () => rand32());
  alertLeaves[1234] = keccak256(alertPreimage) as Hex;
  const alertTree = SimpleMerkleTree.of(alertLeaves);
  const { h: alertHeader } = await anchor(k, alertLeaves.length, alertTree.root as Hex);
  const payee = new Wallet(ANVIL_DEV_KEYS[7]).address; // an existing account (a new one costs 25,000 more)
  const terms = {
    payee,
    site,
    deviceId: 0x2a,
    minSeverity: 3,
    ruleHash: keccakId("failure-critical"),
    modelHash: ZERO_HASH,
    notBeforeUs: 0,
    expiresAt: (await relayer.now()) + 86_400n,
    payout: 10n ** 16n,
  };
  const openTx = await escrow.getFunction("open")(terms, { value: 10n ** 18n });
  record("escrow open (agreement, funded)", (await openTx.wait())?.gasUsed ?? 0n);
  const alertClaim = (later: Hex[]): unknown[] => [
    alertPreimage,
    headerTuple(alertHeader),
    later,
    alertTree.getProof(1234),
  ];
  const escrowView = async (later: Hex[]): Promise<bigint> => {
    const data = escrowIface.encodeFunctionData("check", [1n, alertClaim(later)]);
    await provider.call({ to: escrowAt, data }); // throws if the claim would be refused
    return (await provider.estimateGas({ to: escrowAt, data })) - 21_000n;
  };
  const escrowCheck0 = record(
    "escrow check: decode + gateway + inclusion, 0 later (view)",
    await escrowView([]),
    "isLeafIncluded alone: see above",
  );
  const claimTx = await escrow.getFunction("claim")(1n, alertClaim([]));
  const escrowClaim = record(
    "escrow claim: check + pay once (tx, 0 later batches)",
    (await claimTx.wait())?.gasUsed ?? 0n,
    "payee account exists",
  );
  const alertLater: Hex[] = [];
  for (let i = 0; i < 10; i++) alertLater.push(hashBatchHeader((await anchor(k)).h));
  // A second agreement, so the same leaf is claimable again (replay protection is per agreement).
  await (await escrow.getFunction("open")(terms, { value: 10n ** 18n })).wait();
  const escrowCheck10 = record(
    "escrow check, 10 later batches (view)",
    await (async () => {
      const data = escrowIface.encodeFunctionData("check", [2n, alertClaim(alertLater)]);
      await provider.call({ to: escrowAt, data });
      return (await provider.estimateGas({ to: escrowAt, data })) - 21_000n;
    })(),
  );

  // ---- device management
  record(
    "rotateGatewayKey by operator (-> secp256k1)",
    (await op.rotateGatewayKey(gws[2]!.id, "secp256k1", registrationPublicKey(seededKey("secp256k1"))))
      .gasUsed,
  );
  {
    const g = gws[3]!;
    const nk = seededKey("secp256k1");
    const digest = await relayer.keyRotationDigest(g.id, "secp256k1", registrationPublicKey(nk));
    record(
      "rotateGatewayKeyBySignature (old key signs)",
      (
        await relayer.rotateGatewayKeyBySignature(
          g.id,
          "secp256k1",
          registrationPublicKey(nk),
          signDigest(g.key, digest),
        )
      ).gasUsed,
    );
    g.key = nk;
  }
  record("suspendGateway", (await op.suspendGateway(gws[4]!.id)).gasUsed);
  record("revokeGateway", (await op.revokeGateway(gws[4]!.id)).gasUsed);
  record(
    "registerSensor (P-256 key)",
    (await op.registerSensor(k.id, 1, "p256", registrationPublicKey(seededKey("p256")))).gasUsed,
  );
  record(
    "grantGatewayAccess",
    (await op.grantGatewayAccess(k.id, relayer.account, (await op.now()) + 86_400n)).gasUsed,
  );

  // ---- releases
  const proposal = await manager.proposeRelease({
    kind: "model",
    target: keccakId("hw:rpi4") as Hex,
    version: 1n,
    contentHash: rand32(),
    size: 2_000_000n,
    trainingDataHash: rand32(),
    uris: [
      "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
      "https://models.example/vigil-anomaly-v1.onnx",
    ],
    metrics: '{"f1":0.93,"auc":0.97}',
  });
  record("proposeRelease (2 URIs, metrics)", proposal.gasUsed);
  record("approveRelease (1 of 2)", (await a1.approveRelease(proposal.releaseId)).gasUsed);
  record(
    "approveRelease (2 of 2, activates)",
    (await a2.approveRelease(proposal.releaseId)).gasUsed,
    "recounts 1 earlier approval",
  );
  {
    // activate(): the re-check after the admin lowered the threshold (3 -> 2) with 2 approvals in.
    await admin.setApprovalThreshold(3);
    const { releaseId } = await manager.proposeRelease({
      kind: "firmware",
      target: keccakId("hw:esp32") as Hex,
      version: 1n,
      contentHash: rand32(),
      size: 500_000n,
      trainingDataHash: ZERO_HASH,
      uris: ["https://firmware.example/esp32-v1.bin"],
      metrics: "",
    });
    await a1.approveRelease(releaseId);
    await a2.approveRelease(releaseId);
    await admin.setApprovalThreshold(2);
    record(
      "activateRelease (re-check, 2 approvals counted)",
      (await relayer.activateRelease(releaseId)).gasUsed,
    );
  }
  for (const [g, label] of [
    [k, "secp256k1"],
    [p, "P-256"],
  ] as const) {
    const nonce = (await relayer.installNonce(g.id)) + 1n;
    const digest = await relayer.installReportDigest(g.id, proposal.releaseId, nonce);
    record(
      `reportInstalled (${label})`,
      (await relayer.reportInstalled(g.id, proposal.releaseId, nonce, signDigest(g.key, digest))).gasUsed,
    );
  }

  // ---- naive design: one storage slot per frame hash
  const naive = compileNaive();
  deployer.reset(); // the admin client shares account #0
  const factory = new ContractFactory(naive.abi as never, naive.bytecode, deployer);
  const store = await (await factory.deploy()).waitForDeployment();
  const naivePerFrame: Record<string, number> = {};
  for (const n of [1, 100, 1000]) {
    const tx = await store.getFunction("store")(Array.from({ length: n }, () => rand32()));
    const r = await tx.wait();
    const per = (r?.gasUsed ?? 0n) / BigInt(n);
    naivePerFrame[n] = Number(per);
    record(`naive: store ${n} frame hashes (per frame)`, per);
  }
  // 10,000 frames do not fit in one 30M-gas block: extrapolated from the 1,000-frame run.
  naivePerFrame[10_000] = naivePerFrame[1000] ?? 0;

  const vigilPerFrame = { 1: Number(anchorK), 100: Number(anchorK) / 100, 10000: Number(anchorK) / 10_000 };

  // ---- print
  console.log(
    `gas on anvil --network optimism, solc ${VigilRegistryArtifact.solcVersion}, cancun bytecode, optimizer 10,000 runs\n`,
  );
  console.log(`${"operation".padEnd(58)} ${"gas".padStart(10)}  note`);
  console.log(`${"-".repeat(58)} ${"-".repeat(10)}  ----`);
  for (const r of rows) console.log(`${r.op.padEnd(58)} ${r.gas.toString().padStart(10)}  ${r.note ?? ""}`);
  console.log("\nper-frame gas (secp256k1 anchor; frames per batch):");
  console.log(`${"frames/batch".padEnd(14)} ${"Vigil".padStart(10)} ${"naive".padStart(10)}`);
  for (const n of [1, 100, 10_000] as const) {
    console.log(
      `${String(n).padEnd(14)} ${vigilPerFrame[n].toFixed(2).padStart(10)} ${String(naivePerFrame[n]).padStart(10)}${n === 10_000 ? "  (naive: extrapolated, exceeds a 30M block)" : ""}`,
    );
  }
  const pays = (many.sameGateway10 ?? Infinity) < Number(anchorK);
  console.log(
    `\nmulti-batch per tx: ${pays ? "pays" : "does not pay"} — 10 batches of one gateway cost ${many.sameGateway10} per batch vs ${anchorK} alone; 5 gateways ${many.fiveGateways} per batch`,
  );
  console.log(
    JSON.stringify({
      bench: "gas",
      network: "anvil --network optimism",
      anchorSecp256k1: Number(anchorK),
      anchorP256: Number(anchorP),
      targets: { anchorSecp256k1: 45_000, anchorP256: 50_000, perFrameAt10k: 5 },
      meetsTargets: anchorK <= 45_000n && anchorP <= 50_000n && vigilPerFrame[10000] <= 5,
      perFrame: { vigil: vigilPerFrame, naive: naivePerFrame },
      anchorMany: many,
      multiBatchPays: pays,
      escrow: {
        checkView: Number(escrowCheck0),
        checkView10Later: Number(escrowCheck10),
        claim: Number(escrowClaim),
        overIsLeafIncluded: Number(escrowCheck0 - inclusion0),
      },
      operations: Object.fromEntries(rows.map((r) => [r.op, Number(r.gas)])),
    }),
  );
  await Promise.all([admin, op, manager, a1, a2, relayer].map((c) => c.close()));
  provider.destroy();
} finally {
  await anvil.stop();
}
