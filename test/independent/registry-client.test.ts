/**
 * An independent integrator's client of the registry contracts, written from contracts/README.md
 * ALONE (and the CLI's --help for deploying and registering), as a check that the document is
 * exact: the ABI is the README's "Signatures" block (written by hand, not the artifacts' ABI;
 * only the escrow's bytecode comes from its artifact, since an integrator deploys it itself).
 * Every line must exist in the deployed code with exactly that shape (its selector / topic0),
 * and the calls behave as the README says. Conversely, the block claims to be the complete ABI:
 * every function, event and error of each contract's compiled ABI (the committed artifacts
 * that `vigil chain deploy` checks the deployed code against) must have its line, in the same
 * shape (types, `indexed`, mutability, returns).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AbiCoder,
  Contract,
  ContractFactory,
  Interface,
  JsonRpcProvider,
  NonceManager,
  Signature,
  TypedDataEncoder,
  Wallet,
  concat,
  hexlify,
  id,
  keccak256,
  randomBytes,
  toBeHex,
  zeroPadValue,
  type Log,
} from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import {
  VigilMaintenanceEscrowArtifact,
  VigilRegistryArtifact,
  VigilReleasesArtifact,
} from "../../contracts/artifacts/index.ts";
import { runVigil } from "../helpers/procs.ts";

/**
 * The integrator's ABI: the README's "Signatures" block, read line by line (its `BatchHeader`,
 * `CompactSignature` and `Terms` names expanded to the tuples the README defines; a `// Vigil…`
 * line starts a contract, other `//` lines are comments).
 */
function readmeAbi(): Record<"VigilRegistry" | "VigilReleases" | "VigilMaintenanceEscrow", string[]> {
  const md = readFileSync(new URL("../../contracts/README.md", import.meta.url), "utf8");
  const block = /## Signatures[\s\S]*?```solidity\n([\s\S]*?)```/.exec(md)![1]!;
  const terms = /\(Terms = (\(.*\))\)/.exec(block)![1]!;
  const out = { VigilRegistry: [], VigilReleases: [], VigilMaintenanceEscrow: [] } as Record<
    string,
    string[]
  >;
  let current = "";
  for (const line of block.split("\n")) {
    const section = /^\/\/ (Vigil\w+)/.exec(line);
    if (section) current = section[1]!;
    else if (line.trim() && !line.startsWith("//"))
      out[current]!.push(
        line // whole words only: not hashBatchHeader, InvalidTerms
          .replace(/\bBatchHeader\b/g, HEADER)
          .replace(/\bCompactSignature\b/g, "(bytes32 r, bytes32 vs)")
          .replace(/\bTerms\b/g, terms),
      );
  }
  return out as ReturnType<typeof readmeAbi>;
}
const HEADER =
  "(bytes32 gatewayId, uint64 seq, bytes32 prevHead, bytes32 root, uint32 leafCount, uint64 firstTimestamp, uint64 lastTimestamp, bytes32 modelHash)";
const ABI = readmeAbi();

const BATCH_TYPES = {
  BatchHeader: [
    { name: "gatewayId", type: "bytes32" },
    { name: "seq", type: "uint64" },
    { name: "prevHead", type: "bytes32" },
    { name: "root", type: "bytes32" },
    { name: "leafCount", type: "uint32" },
    { name: "firstTimestamp", type: "uint64" },
    { name: "lastTimestamp", type: "uint64" },
    { name: "modelHash", type: "bytes32" },
  ],
};
const ROTATION_TYPES = {
  KeyRotation: [
    { name: "gatewayId", type: "bytes32" },
    { name: "keyType", type: "uint8" },
    { name: "publicKey", type: "bytes" },
    { name: "keyEpoch", type: "uint16" },
  ],
};

type Header = {
  gatewayId: string;
  seq: bigint;
  prevHead: string;
  root: string;
  leafCount: number;
  firstTimestamp: bigint;
  lastTimestamp: bigint;
  modelHash: string;
};

/** OpenZeppelin MerkleProof: sorted-pair keccak256. */
const pair = (a: string, b: string) => keccak256(BigInt(a) < BigInt(b) ? concat([a, b]) : concat([b, a]));
const ZERO = zeroPadValue("0x", 32);

let anvil: Anvil;
let provider: JsonRpcProvider;
let registry: Contract;
let releases: Contract;
let escrow: Contract;
const code = new Map<Contract, string>();
let chainId: bigint;
const gatewayKey = Wallet.createRandom();
const gatewayId = id("vigil-gateway:independent");
const SITE = "plant-a";
const siteId = id(`site:${SITE}`);

beforeAll(async () => {
  anvil = await startAnvil({ network: "optimism" });
  const dir = mkdtempSync(join(tmpdir(), "registry-client-"));
  const file = join(dir, "deployment.json");
  const run = async (args: string[]) => {
    const r = await runVigil(args);
    if (r.code !== 0) throw new Error(`vigil ${args.join(" ")}: ${r.stderr}`);
  };
  await run(["chain", "deploy", "--rpc", anvil.url, "--out", file]);
  const admin = new Wallet(ANVIL_DEV_KEYS[0]!).address;
  await run([
    "chain",
    "grant-operator",
    "--deployment",
    file,
    "--rpc",
    anvil.url,
    "--site",
    SITE,
    "--account",
    admin,
  ]);
  await run([
    "chain", "register-gateway", "--deployment", file, "--rpc", anvil.url, "--gateway-id", gatewayId,
    "--site", SITE, "--public-key", gatewayKey.address,
  ]); // prettier-ignore
  // README "Signatures": the deployment file names both addresses.
  const d = JSON.parse(readFileSync(file, "utf8")) as { contracts: Record<string, { address: string }> };
  provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, pollingInterval: 50 });
  chainId = (await provider.getNetwork()).chainId;
  const sender = new NonceManager(new Wallet(ANVIL_DEV_KEYS[3]!, provider)); // any account may anchor
  registry = new Contract(d.contracts.VigilRegistry!.address, ABI.VigilRegistry, sender);
  releases = new Contract(d.contracts.VigilReleases!.address, ABI.VigilReleases, sender);
  // The escrow is deployed by the integrator (README): its constructor line is in the block.
  const factory = new ContractFactory(
    ABI.VigilMaintenanceEscrow,
    VigilMaintenanceEscrowArtifact.bytecode,
    sender,
  );
  escrow = (await (await factory.deploy(registry.target)).waitForDeployment()) as unknown as Contract;
  for (const c of [registry, releases, escrow]) code.set(c, await provider.getCode(c.target as string));
}, 120_000);

afterAll(async () => {
  provider?.destroy();
  await anvil?.stop();
});

function domain() {
  return { name: "VigilRegistry", version: "1", chainId, verifyingContract: registry.target as string };
}

/** Signs a header with the gateway key as README "Fixed interfaces" says; ERC-2098 compact form. */
function sign(h: Header): { r: string; vs: string } {
  const digest = TypedDataEncoder.hash(domain(), BATCH_TYPES, h);
  const sig = Signature.from(gatewayKey.signingKey.sign(digest));
  const vs = (BigInt(sig.v - 27) << 255n) | BigInt(sig.s);
  return { r: sig.r, vs: toBeHex(vs, 32) };
}

const structHash = (h: Header) => TypedDataEncoder.hashStruct("BatchHeader", BATCH_TYPES, h);

describe("contracts/README.md, by hand", () => {
  it("every signature of the README exists in the deployed code with exactly that shape", () => {
    // A function selector is a PUSH4 of the dispatcher, an error selector a PUSH4 or a left-aligned
    // PUSH32 of the revert, an event topic a PUSH32.
    const absent = (c: Contract) =>
      c.interface.fragments.flatMap((f) => {
        if (f.type === "constructor") return [];
        const sig = (f as unknown as { format(k: string): string }).format("sighash");
        const h = id(sig).slice(2);
        const needles =
          f.type === "event" ? [`7f${h}`] : [`63${h.slice(0, 8)}`, `7f${h.slice(0, 8)}${"0".repeat(56)}`];
        return needles.some((n) => code.get(c)!.includes(n)) ? [] : [`${f.type} ${sig}`];
      });
    expect(
      ABI.VigilRegistry.length + ABI.VigilReleases.length + ABI.VigilMaintenanceEscrow.length,
    ).toBeGreaterThan(90);
    // ethers drops a line it cannot parse (with a warning): every line must have become a fragment.
    expect([registry, releases, escrow].map((c) => c.interface.fragments.length)).toEqual([
      ABI.VigilRegistry.length,
      ABI.VigilReleases.length,
      ABI.VigilMaintenanceEscrow.length,
    ]);
    // Only what the README says is never emitted or raised at run time is not in the runtime code
    // (StringTooLong is in the constructors' code only); the next test checks their shapes.
    expect([absent(registry), absent(releases), absent(escrow)].map((a) => a.sort())).toEqual([
      [
        "error StringTooLong(string)",
        "event EIP712DomainChanged()",
        "event RoleAdminChanged(bytes32,bytes32,bytes32)",
      ],
      ["error StringTooLong(string)", "event EIP712DomainChanged()"],
      [],
    ]);
    // The check can fail: a shape that differs in one type is absent.
    const wrong = new Contract(registry.target, [
      "function headAt(bytes32 gatewayId, uint256 seq) view returns (bytes32)",
    ]);
    code.set(wrong, code.get(registry)!);
    expect(absent(wrong)).toEqual(["function headAt(bytes32,uint256)"]);
  });

  it("the README block is the complete ABI: every compiled function, event and error has its line", () => {
    // The shape without names (README names are informative): types, `indexed`, mutability, returns.
    const shapes = (i: Interface) => i.fragments.map((f) => f.format("minimal"));
    const notIn = (want: Interface, have: Interface) => {
      const got = new Set(shapes(have));
      return shapes(want).filter((s) => !got.has(s));
    };
    const compiled = {
      VigilRegistry: new Interface(VigilRegistryArtifact.abi),
      VigilReleases: new Interface(VigilReleasesArtifact.abi),
      VigilMaintenanceEscrow: new Interface(VigilMaintenanceEscrowArtifact.abi),
    };
    const readme = { VigilRegistry: registry, VigilReleases: releases, VigilMaintenanceEscrow: escrow };
    for (const name of Object.keys(compiled) as (keyof typeof compiled)[]) {
      const abi = compiled[name];
      const doc = readme[name].interface;
      expect({ name, notInReadme: notIn(abi, doc), notInAbi: notIn(doc, abi) }).toEqual({
        name,
        notInReadme: [],
        notInAbi: [],
      });
      expect(doc.fragments.length).toBe(abi.fragments.length);
    }
    // The check can fail: a block without one line misses that entry.
    const short = new Interface(ABI.VigilRegistry.filter((l) => !l.startsWith("function headOf(")));
    expect(notIn(compiled.VigilRegistry, short)).toEqual([
      "function headOf(bytes32) view returns (uint64,bytes32)",
    ]);
  });

  it("roles are the documented hashes and the deployer is the default admin", async () => {
    expect(await registry.RELEASE_MANAGER_ROLE!()).toBe(id("VIGIL_RELEASE_MANAGER"));
    expect(await registry.RELEASE_APPROVER_ROLE!()).toBe(id("VIGIL_RELEASE_APPROVER"));
    expect(await registry.AUDITOR_ROLE!()).toBe(id("VIGIL_AUDITOR"));
    const op = keccak256(
      AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [id("VIGIL_OPERATOR"), siteId]),
    );
    expect(await registry.operatorRole!(siteId)).toBe(op);
    const admin = new Wallet(ANVIL_DEV_KEYS[0]!).address;
    expect(await registry.defaultAdmin!()).toBe(admin);
    expect(await registry.hasRole!(op, admin)).toBe(true);
    expect(await releases.MAX_VERSION_STEP!()).toBe(2n ** 32n);
  });

  it("getGateway returns GatewayInfo in the documented order and enum numbers", async () => {
    const g = (await registry.getGateway!(gatewayId)) as unknown as Record<string, unknown>;
    expect(g.status).toBe(1n); // DeviceStatus 1 Active
    expect(g.keyType).toBe(1n); // KeyType 1 Secp256k1
    expect(g.signer).toBe(gatewayKey.address);
    expect(g.seq).toBe(0n);
    expect(g.head).toBe(ZERO);
    expect(g.site).toBe(siteId);
    expect(g.metadataURI).toBe("");
  });

  it("anchors with a CompactSignature, emits BatchAnchored, chains heads, proves leaves", async () => {
    const now = BigInt(Date.now()) * 1000n;
    const leaves = [hexlify(randomBytes(32)), hexlify(randomBytes(32))];
    const h1: Header = {
      gatewayId,
      seq: 1n,
      prevHead: ZERO,
      root: pair(leaves[0]!, leaves[1]!),
      leafCount: 2,
      firstTimestamp: now,
      lastTimestamp: now + 1000n,
      modelHash: hexlify(randomBytes(32)),
    };
    const r1 = await (await registry.anchor!(h1, sign(h1))).wait();
    const ev = (r1.logs as Log[]).find(
      (l) => l.topics[0] === id("BatchAnchored(bytes32,uint64,bytes32,bytes32,bytes32)"),
    )!;
    expect(ev.topics.slice(1)).toEqual([gatewayId, toBeHex(1n, 32), h1.root]);
    const [headerHash, head1] = AbiCoder.defaultAbiCoder().decode(
      ["bytes32", "bytes32"],
      ev.data,
    ) as unknown as [string, string];
    expect(headerHash).toBe(structHash(h1));
    // head_n = keccak256(prevHead ‖ structHash)
    expect(head1).toBe(keccak256(concat([ZERO, structHash(h1)])));
    expect(((await registry.getGateway!(gatewayId)) as unknown as { head: string }).head).toBe(head1);

    // Replay: seq must be stored+1.
    const replay = registry.anchor!.staticCall(h1, sign(h1));
    await expect(replay).rejects.toMatchObject({
      revert: { name: "UnexpectedSequence", args: [gatewayId, 2n, 1n] },
    });

    // Steady state (head slot already non-zero): README target ≤ 45,000 gas.
    const h2: Header = { ...h1, seq: 2n, prevHead: head1, root: hexlify(randomBytes(32)), leafCount: 1 };
    const r2 = await (await registry.anchor!(h2, sign(h2))).wait();
    const head2 = keccak256(concat([head1, structHash(h2)]));
    console.log(`anchor gas: first ${String(r1.gasUsed)}, steady ${String(r2.gasUsed)}`);
    expect(r2.gasUsed).toBeLessThanOrEqual(45_000n);

    // Inclusion: proof against header.root, replay of the later header hashes to the stored head.
    expect(await registry.isLeafIncluded!(h1, [structHash(h2)], leaves[0], [leaves[1]])).toBe(true);
    expect(await registry.isLeafIncluded!(h1, [structHash(h2)], leaves[1], [leaves[0]])).toBe(true);
    expect(await registry.isLeafIncluded!(h1, [structHash(h2)], hexlify(randomBytes(32)), [leaves[1]])).toBe(
      false,
    );
    expect(await registry.verifyBatch!(h1, [structHash(h2)])).toBe(true);
    expect(await registry.verifyBatch!(h1, [])).toBe(false);
    expect(await registry.headAt!(gatewayId, 2n)).toBe(head2);

    // checkpoint (anyone): later proofs may stop there.
    await (await registry.checkpoint!(gatewayId)).wait();
    const h3: Header = { ...h2, seq: 3n, prevHead: head2, root: hexlify(randomBytes(32)) };
    await (await registry.anchor!(h3, sign(h3))).wait();
    expect(await registry.headAt!(gatewayId, 2n)).toBe(head2);
    expect(await registry.isLeafIncluded!(h1, [structHash(h2)], leaves[0], [leaves[1]])).toBe(true);
  });

  it("keyRotationDigest is the EIP-712 digest of KeyRotation in the VigilRegistry domain", async () => {
    const next = Wallet.createRandom();
    const g = (await registry.getGateway!(gatewayId)) as unknown as { keyEpoch: bigint };
    const publicKey = next.address; // README: a secp256k1 key is its 20-byte address
    const want = TypedDataEncoder.hash(domain(), ROTATION_TYPES, {
      gatewayId,
      keyType: 1,
      publicKey,
      keyEpoch: g.keyEpoch,
    });
    expect(await registry.keyRotationDigest!(gatewayId, 1, publicKey)).toBe(want);
  });

  it("roles: who may call what, and the custom error of each refusal", async () => {
    const stranger = new Wallet(ANVIL_DEV_KEYS[5]!, provider);
    const reg = registry.connect(stranger) as Contract;
    const rel = releases.connect(stranger) as Contract;
    await expect(reg.grantRole!.staticCall(id("VIGIL_AUDITOR"), stranger.address)).rejects.toMatchObject({
      revert: { name: "AccessControlUnauthorizedAccount", args: [stranger.address, ZERO] },
    });
    await expect(
      reg.registerGateway!.staticCall(id("vigil-gateway:other"), siteId, 1, stranger.address, ""),
    ).rejects.toMatchObject({ revert: { name: "NotSiteOperator", args: [stranger.address, siteId] } });
    await expect(reg.suspendGateway!.staticCall(gatewayId)).rejects.toMatchObject({
      revert: { name: "NotSiteOperator", args: [stranger.address, siteId] },
    });
    // README: GatewayUnknown before the role check; ZeroId before it too.
    const unknown = id("vigil-gateway:unknown");
    await expect(reg.suspendGateway!.staticCall(unknown)).rejects.toMatchObject({
      revert: { name: "GatewayUnknown", args: [unknown] },
    });
    await expect(
      reg.registerGateway!.staticCall(ZERO, siteId, 1, stranger.address, ""),
    ).rejects.toMatchObject({
      revert: { name: "ZeroId", args: [] },
    });
    // README: DEFAULT_ADMIN_ROLE moves only by the two-step transfer, even the admin cannot grant it.
    const admin = new Wallet(ANVIL_DEV_KEYS[0]!, provider);
    await expect(
      (registry.connect(admin) as Contract).grantRole!.staticCall(ZERO, stranger.address),
    ).rejects.toMatchObject({ revert: { name: "AccessControlEnforcedDefaultAdminRules", args: [] } });
    await expect(reg.acceptDefaultAdminTransfer!.staticCall()).rejects.toMatchObject({
      revert: { name: "AccessControlInvalidDefaultAdmin", args: [stranger.address] },
    });
    await expect(rel.approve!.staticCall(1n)).rejects.toMatchObject({
      revert: { name: "MissingRole", args: [stranger.address, id("VIGIL_RELEASE_APPROVER")] },
    });
    await expect(rel.activate!.staticCall(12345n)).rejects.toMatchObject({
      revert: { name: "ReleaseUnknown", args: [12345n] },
    });
    await expect(escrow.fund!.staticCall(7n, { value: 1n })).rejects.toMatchObject({
      revert: { name: "AgreementUnknown", args: [7n] },
    });
    expect(await escrow.registry!()).toBe(registry.target);
    expect(await escrow.agreementCount!()).toBe(0n);
    expect(await registry.isReaderAllowed!(stranger.address, gatewayId)).toBe(false);
  });

  it("lifecycle: a suspended gateway cannot anchor and signs nothing valid, and resumes", async () => {
    const op = registry.connect(new NonceManager(new Wallet(ANVIL_DEV_KEYS[0]!, provider))) as Contract;
    const [seq, head] = (await registry.headOf!(gatewayId)) as unknown as [bigint, string];
    const now = BigInt(Date.now()) * 1000n;
    const h: Header = {
      gatewayId,
      seq: seq + 1n,
      prevHead: head,
      root: hexlify(randomBytes(32)),
      leafCount: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      modelHash: ZERO,
    };
    const digest = TypedDataEncoder.hash(domain(), BATCH_TYPES, h);
    const sig = gatewayKey.signingKey.sign(digest).serialized;
    expect(await registry.batchDigest!(h)).toBe(digest);
    expect(await registry.isValidGatewaySignature!(gatewayId, digest, sig)).toBe(true);
    await (await op.suspendGateway!(gatewayId)).wait();
    await expect(registry.anchor!.staticCall(h, sign(h))).rejects.toMatchObject({
      revert: { name: "GatewayNotActive", args: [gatewayId, 2n] },
    });
    expect(await registry.isValidGatewaySignature!(gatewayId, digest, sig)).toBe(false);
    await expect(op.suspendGateway!.staticCall(gatewayId)).rejects.toMatchObject({
      revert: { name: "InvalidStatusTransition", args: [2n, 2n] },
    });
    await (await op.resumeGateway!(gatewayId)).wait();
    await (await registry.anchor!(h, sign(h))).wait();
    expect(((await registry.headOf!(gatewayId)) as unknown as [bigint, string])[0]).toBe(seq + 1n);
  });
});
