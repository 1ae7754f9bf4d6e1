/**
 * The ONE behaviour suite of RegistryClient, run unchanged against the in-memory fake
 * (registry-client.fake.test.ts) and the ethers client on a real anvil (registry-client.anvil.test.ts),
 * in the style of aedes-persistence's abstract suite. Test names start with a category.
 */
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { p256 } from "@noble/curves/nist.js";
import { id as keccakId, keccak256 } from "ethers";
import { beforeEach, describe, expect, it } from "vitest";
import {
  generateKey,
  registrationPublicKey,
  signDigest,
  type DeviceKey,
  type KeyType,
} from "../../gateway/src/chain/keys.ts";
import { MAX_VERSION_STEP, type RegistryClient, type ReleaseInput } from "../../gateway/src/chain/client.ts";
import {
  ZERO_HASH,
  batchDigest,
  hashBatchHeader,
  nextHead,
  vigilDomain,
  type BatchHeader,
} from "../../gateway/src/chain/eip712.ts";
import { bytesToHex, hexToBytes, type Hex } from "../../gateway/src/core/hex.ts";
import { ContractRevertError } from "../../gateway/src/chain/errors.ts";

export interface SuiteEnv {
  /** Registry default admin. */
  admin: RegistryClient;
  /** At least 5 more accounts without roles. */
  others: RegistryClient[];
  /** Moves the chain clock forward. */
  advanceTime(seconds: bigint): Promise<void>;
  close(): Promise<void>;
}

export async function expectRevert(
  p: Promise<unknown>,
  errorName: string,
  args?: unknown[],
): Promise<ContractRevertError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected revert ${errorName}`).toBeInstanceOf(ContractRevertError);
  const r = err as ContractRevertError;
  expect(r.errorName).toBe(errorName);
  if (args)
    expect(r.args).toEqual(
      args.map((a) => (typeof a === "string" ? a.toLowerCase() : typeof a === "number" ? BigInt(a) : a)),
    );
  return r;
}

const SITE = keccakId("site:plant-1") as Hex;
const OTHER_SITE = keccakId("site:plant-2") as Hex;
const T0 = 1_767_225_600_000_000n; // µs

function rand32(): Hex {
  return bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
}

/** Builds and signs consecutive headers for one gateway, tracking the head like the gateway does. */
export class HeaderChain {
  seq = 0n;
  head: Hex = ZERO_HASH;
  readonly headers: BatchHeader[] = [];
  constructor(
    readonly gatewayId: Hex,
    public key: DeviceKey,
    readonly client: RegistryClient,
  ) {}
  next(overrides: Partial<BatchHeader> = {}): BatchHeader {
    const seq = this.seq + 1n;
    return {
      gatewayId: this.gatewayId,
      seq,
      prevHead: this.head,
      root: rand32(),
      leafCount: 1000,
      firstTimestamp: T0 + seq * 60_000_000n,
      lastTimestamp: T0 + seq * 60_000_000n + 59_999_999n,
      modelHash: keccakId("model:v1") as Hex,
      ...overrides,
    };
  }
  sign(h: BatchHeader, key: DeviceKey = this.key): Hex {
    return signDigest(key, batchDigest(this.client.domain(), h));
  }
  accept(h: BatchHeader): void {
    this.head = nextHead(this.head, h);
    this.seq = h.seq;
    this.headers.push(h);
  }
  async anchorNext(
    submitter: RegistryClient = this.client,
    overrides: Partial<BatchHeader> = {},
  ): Promise<BatchHeader> {
    const h = this.next(overrides);
    const res = await submitter.anchor(h, this.sign(h));
    expect(res.head).toBe(nextHead(this.head, h));
    expect(res.headerHash).toBe(hashBatchHeader(h));
    this.accept(h);
    return h;
  }
}

function highS(sig: Hex, type: KeyType): Hex {
  const n = type === "secp256k1" ? secp256k1.Point.Fn.ORDER : p256.Point.Fn.ORDER;
  const s = BigInt(`0x${sig.slice(66, 130)}`);
  const flipped = (n - s).toString(16).padStart(64, "0");
  if (type === "p256") return `${sig.slice(0, 66)}${flipped}` as Hex;
  const v = Number.parseInt(sig.slice(130, 132), 16) === 27 ? "1c" : "1b";
  return `${sig.slice(0, 66)}${flipped}${v}` as Hex;
}

export function registryClientSuite(name: string, factory: () => Promise<SuiteEnv>): void {
  describe(`RegistryClient: ${name}`, () => {
    let env: SuiteEnv;
    let admin: RegistryClient;
    let operator: RegistryClient;
    let stranger: RegistryClient;
    let manager: RegistryClient;
    let approverA: RegistryClient;
    let approverB: RegistryClient;

    beforeEach(async () => {
      env = await factory();
      admin = env.admin;
      [operator, stranger, manager, approverA, approverB] = env.others as [
        RegistryClient,
        RegistryClient,
        RegistryClient,
        RegistryClient,
        RegistryClient,
      ];
      await admin.grantOperator(SITE, operator.account);
      await admin.grantRole("releaseManager", manager.account);
      await admin.grantRole("releaseApprover", approverA.account);
      await admin.grantRole("releaseApprover", approverB.account);
      await admin.grantRole("releaseApprover", manager.account);
      return () => env.close();
    });

    async function newGateway(type: KeyType = "secp256k1", label = "gw-1"): Promise<HeaderChain> {
      const key = generateKey(type);
      const gatewayId = keccakId(`${label}:${type}:${Math.random()}`) as Hex;
      await operator.registerGateway({
        gatewayId,
        site: SITE,
        keyType: type,
        publicKey: registrationPublicKey(key),
        metadataURI: "ipfs://meta",
      });
      return new HeaderChain(gatewayId, key, operator);
    }

    // ---------------------------------------------------------------- devices
    it("behavior: registers secp256k1 and P-256 gateways and reads them back", async () => {
      const a = await newGateway("secp256k1");
      const b = await newGateway("p256");
      const ga = await stranger.getGateway(a.gatewayId);
      expect(ga).toMatchObject({
        status: "active",
        keyType: "secp256k1",
        keyEpoch: 0,
        seq: 0n,
        head: ZERO_HASH,
        site: SITE.toLowerCase(),
        metadataURI: "ipfs://meta",
        p256PublicKey: null,
      });
      expect(ga.signer).toBe(registrationPublicKey(a.key));
      const gb = await stranger.getGateway(b.gatewayId);
      expect(gb).toMatchObject({
        status: "active",
        keyType: "p256",
        signer: null,
        p256PublicKey: registrationPublicKey(b.key),
      });
      expect((await stranger.getGateway(rand32())).status).toBe("none");
    });

    it("error: only the site's operator registers; duplicates and bad keys are refused", async () => {
      const key = generateKey("secp256k1");
      const args = {
        gatewayId: rand32(),
        site: SITE,
        keyType: "secp256k1" as const,
        publicKey: registrationPublicKey(key),
        metadataURI: "",
      };
      await expectRevert(stranger.registerGateway(args), "NotSiteOperator", [stranger.account, SITE]);
      await expectRevert(operator.registerGateway({ ...args, site: OTHER_SITE }), "NotSiteOperator", [
        operator.account,
        OTHER_SITE,
      ]);
      await expectRevert(operator.registerGateway({ ...args, gatewayId: ZERO_HASH }), "ZeroId", []);
      await operator.registerGateway(args);
      await expectRevert(operator.registerGateway(args), "GatewayAlreadyRegistered", [args.gatewayId]);
      const offCurve = `0x${"11".repeat(64)}` as Hex;
      await expectRevert(
        operator.registerGateway({ ...args, gatewayId: rand32(), keyType: "p256", publicKey: offCurve }),
        "InvalidPublicKey",
        [2n, offCurve],
      );
      await expectRevert(
        operator.registerGateway({ ...args, gatewayId: rand32(), publicKey: `0x${"00".repeat(20)}` }),
        "InvalidPublicKey",
        [1n, `0x${"00".repeat(20)}`],
      );
    });

    it("error: role changes need the default admin", async () => {
      await expectRevert(stranger.grantOperator(SITE, stranger.account), "AccessControlUnauthorizedAccount", [
        stranger.account,
        ZERO_HASH,
      ]);
      await expectRevert(
        operator.grantRole("auditor", operator.account),
        "AccessControlUnauthorizedAccount",
        [operator.account, ZERO_HASH],
      );
      expect(await admin.hasRole("releaseManager", manager.account)).toBe(true);
      await admin.revokeRole("releaseManager", manager.account);
      expect(await admin.hasRole("releaseManager", manager.account)).toBe(false);
    });

    // ---------------------------------------------------------------- anchoring
    it("behavior: anchors consecutive batches from any submitter and tracks the head chain", async () => {
      const gw = await newGateway();
      expect(await operator.nextSeq(gw.gatewayId)).toBe(1n);
      await gw.anchorNext(stranger); // any account may submit: the signature is the authority
      await gw.anchorNext(operator);
      await gw.anchorNext(admin);
      expect(await operator.getHead(gw.gatewayId)).toEqual({ seq: 3n, head: gw.head });
      expect(await operator.nextSeq(gw.gatewayId)).toBe(4n);
    });

    it("error: replayed, skipped or zero sequence", async () => {
      const gw = await newGateway();
      const h1 = await gw.anchorNext();
      await expectRevert(operator.anchor(h1, gw.sign(h1)), "UnexpectedSequence", [gw.gatewayId, 2n, 1n]);
      const skip = gw.next({ seq: 3n });
      await expectRevert(operator.anchor(skip, gw.sign(skip)), "UnexpectedSequence", [gw.gatewayId, 2n, 3n]);
      const zero = gw.next({ seq: 0n });
      await expectRevert(operator.anchor(zero, gw.sign(zero)), "UnexpectedSequence", [gw.gatewayId, 2n, 0n]);
    });

    it("error: wrong prevHead, zero root, empty batch, inverted time range", async () => {
      const gw = await newGateway();
      await gw.anchorNext();
      const fork = gw.next({ prevHead: ZERO_HASH });
      await expectRevert(operator.anchor(fork, gw.sign(fork)), "UnexpectedPrevHead", [
        gw.gatewayId,
        gw.head,
        ZERO_HASH,
      ]);
      const zr = gw.next({ root: ZERO_HASH });
      await expectRevert(operator.anchor(zr, gw.sign(zr)), "ZeroRoot", [gw.gatewayId]);
      const empty = gw.next({ leafCount: 0 });
      await expectRevert(operator.anchor(empty, gw.sign(empty)), "EmptyBatch", [gw.gatewayId]);
      const inv = gw.next({ firstTimestamp: T0 + 10n, lastTimestamp: T0 });
      await expectRevert(operator.anchor(inv, gw.sign(inv)), "InvalidTimeRange", [
        gw.gatewayId,
        T0 + 10n,
        T0,
      ]);
    });

    it("error: signatures for another chain or contract, by another key, or with noble's default prehash", async () => {
      const gw = await newGateway();
      const h = gw.next();
      const d = operator.domain();
      const otherChain = signDigest(gw.key, batchDigest(vigilDomain(d.chainId + 1n, d.verifyingContract), h));
      await expectRevert(operator.anchor(h, otherChain), "InvalidSignature", [gw.gatewayId]);
      const otherContract = signDigest(
        gw.key,
        batchDigest(vigilDomain(d.chainId, operator.releasesAddress), h),
      );
      await expectRevert(operator.anchor(h, otherContract), "InvalidSignature", [gw.gatewayId]);
      await expectRevert(operator.anchor(h, gw.sign(h, generateKey("secp256k1"))), "InvalidSignature", [
        gw.gatewayId,
      ]);
      // noble v2 sign() SHA-256-hashes the message unless prehash:false: the digest signed is not the EIP-712 one.
      const rec = secp256k1.sign(hexToBytes(batchDigest(d, h)), gw.key.privateKey, { format: "recovered" });
      const prehashed = bytesToHex(Uint8Array.of(...rec.subarray(1), 27 + (rec[0] ?? 0)));
      await expectRevert(operator.anchor(h, prehashed), "InvalidSignature", [gw.gatewayId]);
      await gw.anchorNext(); // the correct signature still works afterwards
    });

    it("error: high-s signatures are refused (client side for secp256k1 compact form, on chain for P-256 and bytes paths)", async () => {
      const gw = await newGateway("secp256k1");
      const h = gw.next();
      await expect(operator.anchor(h, highS(gw.sign(h), "secp256k1"))).rejects.toThrow(RangeError);
      const pg = await newGateway("p256", "p");
      const ph = pg.next();
      await expectRevert(operator.anchor(ph, highS(pg.sign(ph), "p256")), "MalleableSignature", [
        pg.gatewayId,
      ]);
      await pg.anchorNext();
      // bytes-signature path (old-key rotation): a flipped-s secp256k1 signature is malleable
      const newKey = generateKey("secp256k1");
      const digest = await operator.keyRotationDigest(
        gw.gatewayId,
        "secp256k1",
        registrationPublicKey(newKey),
      );
      await expectRevert(
        stranger.rotateGatewayKeyBySignature(
          gw.gatewayId,
          "secp256k1",
          registrationPublicKey(newKey),
          highS(signDigest(gw.key, digest), "secp256k1"),
        ),
        "MalleableSignature",
        [gw.gatewayId],
      );
    });

    it("behavior: suspend blocks anchoring until resumed; revoke is immediate and final", async () => {
      const gw = await newGateway();
      await gw.anchorNext();
      await expectRevert(stranger.suspendGateway(gw.gatewayId), "NotSiteOperator", [stranger.account, SITE]);
      await operator.suspendGateway(gw.gatewayId);
      const h = gw.next();
      await expectRevert(operator.anchor(h, gw.sign(h)), "GatewayNotActive", [gw.gatewayId, 2n]);
      await operator.resumeGateway(gw.gatewayId);
      await gw.anchorNext();
      await operator.revokeGateway(gw.gatewayId);
      const h2 = gw.next();
      await expectRevert(operator.anchor(h2, gw.sign(h2)), "GatewayNotActive", [gw.gatewayId, 3n]);
      await expectRevert(operator.resumeGateway(gw.gatewayId), "InvalidStatusTransition", [3n, 1n]);
      await expectRevert(operator.revokeGateway(gw.gatewayId), "GatewayRevoked", [gw.gatewayId]);
      await expectRevert(
        operator.rotateGatewayKey(gw.gatewayId, "secp256k1", registrationPublicKey(generateKey("secp256k1"))),
        "GatewayRevoked",
        [gw.gatewayId],
      );
      expect((await operator.getGateway(gw.gatewayId)).status).toBe("revoked");
    });

    it("behavior: key rotation by the operator and by the old key (not replayable)", async () => {
      const gw = await newGateway();
      await gw.anchorNext();
      const k2 = generateKey("p256");
      await operator.rotateGatewayKey(gw.gatewayId, "p256", registrationPublicKey(k2));
      const h = gw.next();
      // the old secp256k1 key no longer anchors (its 65-byte signature, read as P-256 r‖s, is invalid or
      // has a "high s" depending on v), and neither does an unregistered P-256 key
      await expect(operator.anchor(h, gw.sign(h))).rejects.toBeInstanceOf(ContractRevertError);
      await expectRevert(operator.anchor(h, gw.sign(h, generateKey("p256"))), "InvalidSignature", [
        gw.gatewayId,
      ]);
      gw.key = k2;
      await gw.anchorNext();
      // rotation signed by the current (old) key, submitted by a stranger
      const k3 = generateKey("secp256k1");
      const pk3 = registrationPublicKey(k3);
      const digest = await operator.keyRotationDigest(gw.gatewayId, "secp256k1", pk3);
      const sig = signDigest(k2, digest);
      await stranger.rotateGatewayKeyBySignature(gw.gatewayId, "secp256k1", pk3, sig);
      const g = await operator.getGateway(gw.gatewayId);
      expect(g).toMatchObject({ keyType: "secp256k1", signer: pk3, keyEpoch: 2 });
      await expectRevert(
        stranger.rotateGatewayKeyBySignature(gw.gatewayId, "secp256k1", pk3, sig),
        "InvalidSignatureLength",
        [gw.gatewayId, 64n],
      );
      gw.key = k3;
      await gw.anchorNext();
    });

    it("behavior: anchorMany anchors several gateways atomically", async () => {
      const a = await newGateway("secp256k1", "a");
      const b = await newGateway("p256", "b");
      const items = [];
      for (const gw of [a, b, a]) {
        const h = gw.next();
        items.push({ header: h, signature: gw.sign(h) });
        gw.accept(h);
      }
      await stranger.anchorMany(items);
      expect(await stranger.getHead(a.gatewayId)).toEqual({ seq: 2n, head: a.head });
      expect(await stranger.getHead(b.gatewayId)).toEqual({ seq: 1n, head: b.head });
      const good = a.next();
      const bad = b.next({ root: ZERO_HASH });
      await expectRevert(
        stranger.anchorMany([
          { header: good, signature: a.sign(good) },
          { header: bad, signature: b.sign(bad) },
        ]),
        "ZeroRoot",
        [b.gatewayId],
      );
      expect((await stranger.getHead(a.gatewayId)).seq).toBe(2n);
    });

    // ---------------------------------------------------------------- inclusion
    it("behavior: isLeafIncluded proves a leaf of an older batch via later header hashes or a checkpoint", async () => {
      const gw = await newGateway();
      const leaves = Array.from({ length: 5 }, () => keccak256(rand32()));
      const tree = SimpleMerkleTree.of(leaves);
      const h1 = await gw.anchorNext(operator, { root: tree.root as Hex, leafCount: leaves.length });
      const h2 = await gw.anchorNext();
      const h3 = await gw.anchorNext();
      const later = [hashBatchHeader(h2), hashBatchHeader(h3)];
      const proof = tree.getProof(2) as Hex[];
      expect(await stranger.isLeafIncluded(h1, later, leaves[2] as Hex, proof)).toBe(true);
      expect(await stranger.isLeafIncluded(h1, later, keccak256(rand32()) as Hex, proof)).toBe(false);
      expect(await stranger.isLeafIncluded(h1, later.slice(0, 1), leaves[2] as Hex, proof)).toBe(false);
      expect(
        await stranger.isLeafIncluded(h1, [later[1] as Hex, later[0] as Hex], leaves[2] as Hex, proof),
      ).toBe(false);
      expect(await stranger.verifyBatch({ ...h1, leafCount: 6 }, later)).toBe(false);
      expect(await stranger.verifyBatch(h3, [])).toBe(true);
      // checkpoint at seq 3 keeps the proof short after more batches
      await stranger.checkpoint(gw.gatewayId);
      await gw.anchorNext();
      expect(await stranger.isLeafIncluded(h1, later, leaves[2] as Hex, proof)).toBe(true);
      expect(await stranger.verifyBatch(h2, [])).toBe(false); // seq 2 is neither latest nor checkpointed
      await expectRevert(stranger.checkpoint(rand32()), "NothingAnchored");
    });

    // ---------------------------------------------------------------- sensors
    it("behavior: sensor nodes under a gateway; revoked is final", async () => {
      const gw = await newGateway();
      const pk = registrationPublicKey(generateKey("p256"));
      await operator.registerSensor(gw.gatewayId, 7, "p256", pk);
      await operator.registerSensor(gw.gatewayId, 8, "none", "0x");
      expect(await stranger.getSensor(gw.gatewayId, 7)).toEqual({
        status: "active",
        keyType: "p256",
        publicKey: pk,
      });
      await expectRevert(operator.registerSensor(gw.gatewayId, 7, "none", "0x"), "SensorAlreadyRegistered", [
        gw.gatewayId,
        7n,
      ]);
      await expectRevert(stranger.registerSensor(gw.gatewayId, 9, "none", "0x"), "NotSiteOperator", [
        stranger.account,
        SITE,
      ]);
      await operator.setSensorStatus(gw.gatewayId, 7, "suspended");
      await operator.setSensorStatus(gw.gatewayId, 7, "revoked");
      await expectRevert(operator.setSensorStatus(gw.gatewayId, 7, "active"), "InvalidStatusTransition", [
        3n,
        1n,
      ]);
      await expectRevert(operator.setSensorStatus(gw.gatewayId, 99, "active"), "SensorUnknown", [
        gw.gatewayId,
        99n,
      ]);
      expect((await stranger.getSensor(gw.gatewayId, 7)).status).toBe("revoked");
    });

    // ---------------------------------------------------------------- access
    it("behavior: reader grants per site and per gateway expire and can be revoked; auditors read all", async () => {
      const gw = await newGateway();
      const reader = stranger.account;
      expect(await operator.isReaderAllowed(reader, gw.gatewayId)).toBe(false);
      const now = await operator.now();
      await operator.grantGatewayAccess(gw.gatewayId, reader, now + 100n);
      expect(await operator.isReaderAllowed(reader, gw.gatewayId)).toBe(true);
      await env.advanceTime(200n);
      expect(await operator.isReaderAllowed(reader, gw.gatewayId)).toBe(false);
      const later = await operator.now();
      await operator.grantSiteAccess(SITE, reader, later + 1000n);
      expect(await operator.isReaderAllowed(reader, gw.gatewayId)).toBe(true);
      await operator.revokeSiteAccess(SITE, reader);
      expect(await operator.isReaderAllowed(reader, gw.gatewayId)).toBe(false);
      await expectRevert(operator.grantSiteAccess(SITE, reader, later - 1n), "InvalidGrant", [
        reader,
        later - 1n,
      ]);
      await expectRevert(stranger.grantSiteAccess(SITE, reader, later + 1000n), "NotSiteOperator", [
        stranger.account,
        SITE,
      ]);
      await admin.grantRole("auditor", approverA.account);
      expect(await operator.isReaderAllowed(approverA.account, gw.gatewayId)).toBe(true);
      expect(await operator.isReaderAllowed(reader, rand32())).toBe(false);
    });

    // ---------------------------------------------------------------- releases
    const release = (version: bigint, over: Partial<ReleaseInput> = {}): ReleaseInput => ({
      kind: "model",
      target: keccakId("hw:rpi4") as Hex,
      version,
      contentHash: rand32(),
      size: 1_000_000n,
      trainingDataHash: rand32(),
      uris: [
        "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "https://models.example/v1.onnx",
      ],
      metrics: '{"f1":0.93}',
      ...over,
    });

    it("behavior: M-of-N approval activates a release; versions never go backwards; revocation clears it", async () => {
      const { releaseId } = await manager.proposeRelease(release(1n));
      expect(await stranger.activeRelease("model", keccakId("hw:rpi4") as Hex)).toBeNull();
      await expectRevert(manager.approveRelease(releaseId), "SelfApproval", [releaseId, manager.account]);
      await approverA.approveRelease(releaseId);
      await expectRevert(approverA.approveRelease(releaseId), "AlreadyApproved", [
        releaseId,
        approverA.account,
      ]);
      expect((await stranger.getRelease(releaseId))?.status).toBe("proposed"); // 1 of 2: not active
      await approverB.approveRelease(releaseId);
      const active = await stranger.activeRelease("model", keccakId("hw:rpi4") as Hex);
      expect(active).toMatchObject({
        id: releaseId,
        status: "active",
        approvals: 2,
        version: 1n,
        proposer: manager.account,
      });
      await expectRevert(manager.proposeRelease(release(1n)), "VersionNotIncreasing", [
        0n,
        keccakId("hw:rpi4"),
        1n,
        1n,
      ]);
      await expectRevert(stranger.proposeRelease(release(2n)), "MissingRole", [
        stranger.account,
        keccakId("VIGIL_RELEASE_MANAGER"),
      ]);
      await expectRevert(manager.proposeRelease(release(2n, { uris: ["ftp://x"] })), "InvalidUri", [0n]);
      await expectRevert(manager.proposeRelease(release(2n, { size: 0n })), "InvalidSize");
      await manager.revokeRelease(releaseId, "bad accuracy on site 2");
      expect(await stranger.activeRelease("model", keccakId("hw:rpi4") as Hex)).toBeNull();
      await expectRevert(approverA.approveRelease(releaseId), "ReleaseNotInStatus", [releaseId, 3n]);
      // firmware for the same target has its own version line
      await manager.proposeRelease(release(1n, { kind: "firmware" }));
    });

    it("behavior: threshold is configurable by the admin only", async () => {
      await expectRevert(stranger.setApprovalThreshold(1), "NotAdmin", [stranger.account]);
      await expectRevert(admin.setApprovalThreshold(0), "InvalidThreshold", [0n]);
      await admin.setApprovalThreshold(1);
      const { releaseId } = await manager.proposeRelease(release(5n));
      await approverA.approveRelease(releaseId);
      expect((await stranger.getRelease(releaseId))?.status).toBe("active");
    });

    const TARGET = keccakId("hw:rpi4") as Hex;

    it("attack: an approval stops counting when its approver loses the role (approve, revoke, approve with M = 2)", async () => {
      const { releaseId } = await manager.proposeRelease(release(1n));
      await approverA.approveRelease(releaseId);
      expect(await stranger.currentApprovals(releaseId)).toBe(1);
      await admin.revokeRole("releaseApprover", approverA.account);
      expect(await stranger.currentApprovals(releaseId)).toBe(0);
      await approverB.approveRelease(releaseId);
      expect(await stranger.getRelease(releaseId)).toMatchObject({ status: "proposed", approvals: 2 });
      expect(await stranger.currentApprovals(releaseId)).toBe(1);
      expect(await stranger.activeRelease("model", TARGET)).toBeNull();
      await expectRevert(stranger.activateRelease(releaseId), "BelowThreshold", [releaseId, 1n, 2n]);
      await expectRevert(approverA.approveRelease(releaseId), "MissingRole", [
        approverA.account,
        keccakId("VIGIL_RELEASE_APPROVER"),
      ]);
      // A second current approver completes the quorum.
      await admin.grantRole("releaseApprover", operator.account);
      await operator.approveRelease(releaseId);
      expect(await stranger.activeRelease("model", TARGET)).toMatchObject({ id: releaseId, approvals: 3 });
    });

    it("attack: lowering the threshold never activates through stale approvals; activateRelease re-checks for anyone", async () => {
      await admin.setApprovalThreshold(3);
      const { releaseId } = await manager.proposeRelease(release(1n));
      await approverA.approveRelease(releaseId);
      await approverB.approveRelease(releaseId);
      await admin.revokeRole("releaseApprover", approverA.account);
      await admin.setApprovalThreshold(2);
      expect((await stranger.getRelease(releaseId))?.status).toBe("proposed");
      await expectRevert(stranger.activateRelease(releaseId), "BelowThreshold", [releaseId, 1n, 2n]);
      await admin.setApprovalThreshold(1);
      await stranger.activateRelease(releaseId); // approverB alone meets M = 1
      expect(await stranger.activeRelease("model", TARGET)).toMatchObject({
        id: releaseId,
        status: "active",
      });
      await expectRevert(stranger.activateRelease(releaseId), "ReleaseNotInStatus", [releaseId, 2n]);
      await expectRevert(stranger.activateRelease(999n), "ReleaseUnknown", [999n]);
    });

    it("attack: one release manager cannot block a version line (propose 2^64 − 1 and revoke)", async () => {
      const max = (1n << 64n) - 1n;
      await expectRevert(manager.proposeRelease(release(max)), "VersionStepTooLarge", [0n, TARGET, 0n, max]);
      // The largest step allowed, then revoked: the line stays usable.
      const big = await manager.proposeRelease(release(MAX_VERSION_STEP));
      await manager.revokeRelease(big.releaseId, "rogue manager");
      await expectRevert(manager.proposeRelease(release(2n * MAX_VERSION_STEP + 1n)), "VersionStepTooLarge", [
        0n,
        TARGET,
        MAX_VERSION_STEP,
        2n * MAX_VERSION_STEP + 1n,
      ]);
      const next = await manager.proposeRelease(release(MAX_VERSION_STEP + 1n));
      expect((await stranger.getRelease(next.releaseId))?.version).toBe(MAX_VERSION_STEP + 1n);
    });

    it("behavior: after the current release is revoked no older release becomes current; a newer one does", async () => {
      const v1 = (await manager.proposeRelease(release(1n))).releaseId;
      const v2 = (await manager.proposeRelease(release(2n))).releaseId;
      await approverA.approveRelease(v2);
      await approverB.approveRelease(v2);
      await approverA.approveRelease(v1);
      await approverB.approveRelease(v1);
      expect((await stranger.activeRelease("model", TARGET))?.id).toBe(v2);
      await manager.revokeRelease(v2, "regression");
      expect(await stranger.activeRelease("model", TARGET)).toBeNull();
      const v3 = (await manager.proposeRelease(release(3n))).releaseId;
      await approverA.approveRelease(v3);
      await approverB.approveRelease(v3);
      expect((await stranger.activeRelease("model", TARGET))?.id).toBe(v3);
    });

    it("behavior: reportInstalled is signed by the gateway key, nonce-ordered, only for active releases", async () => {
      for (const type of ["secp256k1", "p256"] as const) {
        const gw = await newGateway(type, `r-${type}`);
        const { releaseId } = await manager.proposeRelease(release(type === "p256" ? 11n : 10n));
        const nonce = (await stranger.installNonce(gw.gatewayId)) + 1n;
        const digest = await stranger.installReportDigest(gw.gatewayId, releaseId, nonce);
        await expectRevert(
          stranger.reportInstalled(gw.gatewayId, releaseId, nonce, signDigest(gw.key, digest)),
          "ReleaseNotInStatus",
          [releaseId, 1n],
        );
        await approverA.approveRelease(releaseId);
        await approverB.approveRelease(releaseId);
        await expectRevert(
          stranger.reportInstalled(gw.gatewayId, releaseId, nonce, signDigest(generateKey(type), digest)),
          "InvalidReportSignature",
          [gw.gatewayId],
        );
        await stranger.reportInstalled(gw.gatewayId, releaseId, nonce, signDigest(gw.key, digest));
        expect(await stranger.installedRelease(gw.gatewayId, "model")).toBe(releaseId);
        expect(await stranger.installNonce(gw.gatewayId)).toBe(1n);
        await expectRevert(
          stranger.reportInstalled(gw.gatewayId, releaseId, nonce, signDigest(gw.key, digest)),
          "UnexpectedNonce",
          [gw.gatewayId, 2n, 1n],
        );
      }
    });
  });
}
