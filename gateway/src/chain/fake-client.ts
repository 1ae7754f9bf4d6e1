/**
 * In-memory {@link RegistryClient} that follows the contracts' rules and throws the same
 * `ContractRevertError`s (custom error name + arguments). Several clients (accounts) share one
 * {@link FakeChain}. For unit tests of the gateway; checked against the real contracts by the shared
 * suite in test/contracts/registry-client.suite.ts.
 */
import { TypedDataEncoder, getAddress, keccak256 } from "ethers";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { p256 } from "@noble/curves/nist.js";
import { verifyDigest, type KeyType } from "./keys.ts";
import {
  DEVICE_STATUS,
  KEY_TYPES,
  MAX_VERSION_STEP,
  RELEASE_KINDS,
  RELEASE_STATUS,
  type AnchorResult,
  type DeviceStatus,
  type GatewayRecord,
  type RegisterGatewayArgs,
  type RegistryClient,
  type ReleaseInput,
  type ReleaseKind,
  type ReleaseRecord,
  type RoleName,
  type SensorRecord,
  type TxResult,
} from "./client.ts";
import {
  ZERO_HASH,
  batchDigest,
  chainHead,
  hashBatchHeader,
  vigilDomain,
  type BatchHeader,
  type VigilDomain,
} from "./eip712.ts";
import { hexToBytes, type Hex } from "../core/hex.ts";
import { ContractRevertError } from "./errors.ts";
import { operatorRoleId, roleId } from "./client.ts";
import { toCompactSignature } from "./signature.ts";
import type { RegistryEventBody } from "./events.ts";

const SECP_N = secp256k1.Point.Fn.ORDER;
const P256_N = p256.Point.Fn.ORDER;
const DEFAULT_ADMIN_ROLE = ZERO_HASH;
const MAX_URI = 512;

interface FakeGateway {
  status: DeviceStatus;
  keyType: KeyType;
  keyEpoch: number;
  publicKey: Hex;
  seq: bigint;
  head: Hex;
  site: Hex;
  metadataURI: string;
  checkpoints: Map<bigint, Hex>;
}

interface FakeRelease extends ReleaseRecord {
  /** Every approver, in order (VigilReleases keeps the list to recount against current role holders). */
  approvedBy: Hex[];
}

/** Shared state of the fake chain (one registry + releases deployment). */
export class FakeChain {
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  readonly releasesAddress: Hex;
  admin: Hex;
  threshold: number;
  maxReleaseSize: bigint;
  block = 0n;
  private readonly clock: () => bigint;
  timeOffset = 0n;
  readonly roles = new Map<Hex, Set<Hex>>();
  readonly gateways = new Map<Hex, FakeGateway>();
  readonly sensors = new Map<string, SensorRecord>();
  readonly siteAccess = new Map<string, bigint>();
  readonly gatewayAccess = new Map<string, bigint>();
  readonly releases: FakeRelease[] = [];
  readonly latestVersion = new Map<string, bigint>();
  /** Per `${kind}/${target}`: the highest-version release ever activated (revoked or not). */
  readonly highestActivated = new Map<string, bigint>();
  readonly installed = new Map<string, bigint>();
  readonly installNonces = new Map<Hex, bigint>();
  /**
   * The events the contracts would emit, in order, with the block of the transaction that emitted
   * them (the registry watch reads them through fake-events.ts).
   */
  readonly events: Array<RegistryEventBody & { block: number; index: number }> = [];
  /** First blocks of the chain's reorgs (see {@link reorg}); a block's hash changes with each. */
  readonly #forks: number[] = [];

  constructor(
    opts: {
      admin?: Hex;
      chainId?: bigint;
      threshold?: number;
      maxReleaseSize?: bigint;
      /** Unix seconds (default: wall clock). */
      now?: () => bigint;
    } = {},
  ) {
    this.chainId = opts.chainId ?? 31337n;
    this.registryAddress = "0x00000000000000000000000000000000000f1a4e";
    this.releasesAddress = "0x00000000000000000000000000000000000f1a4f";
    this.admin = (opts.admin ?? "0x00000000000000000000000000000000000000ad").toLowerCase() as Hex;
    this.threshold = opts.threshold ?? 2;
    this.maxReleaseSize = opts.maxReleaseSize ?? 512n * 1024n * 1024n;
    this.clock = opts.now ?? (() => BigInt(Math.floor(Date.now() / 1000)));
  }

  now(): bigint {
    return this.clock() + this.timeOffset;
  }

  hasRole(role: Hex, account: Hex): boolean {
    if (role === DEFAULT_ADMIN_ROLE) return account === this.admin;
    return this.roles.get(role)?.has(account) ?? false;
  }

  /** Records an event of the transaction being executed (it is mined in block `block + 1`). */
  emit(body: RegistryEventBody): void {
    const block = Number(this.block) + 1;
    let index = 0;
    for (let i = this.events.length - 1; i >= 0 && this.events[i]!.block === block; i--) index++;
    this.events.push({ ...body, block, index });
  }

  /** The hash of block `n` on the current fork (changes for blocks a reorg replaced). */
  blockHash(n: number): Hex {
    const fork = this.#forks.filter((f) => f <= n).length;
    return keccak256(Buffer.from(`fake-block:${n}:${fork}`)) as Hex;
  }

  /**
   * Replaces the last `depth` blocks with empty ones (anvil_reorg): their events are gone and their
   * hashes change. Contract state in the maps is not rewound; the registry watch derives its view
   * from events only.
   */
  reorg(depth: number): void {
    const first = Number(this.block) - depth + 1;
    this.#forks.push(first);
    for (let i = this.events.length - 1; i >= 0; i--)
      if (this.events[i]!.block >= first) this.events.splice(i, 1);
  }

  /** A client acting as `account` (lowercase or checksummed address). */
  client(account: string): FakeRegistryClient {
    return new FakeRegistryClient(this, getAddress(account).toLowerCase() as Hex);
  }
}

function revert(name: string, ...args: unknown[]): never {
  throw new ContractRevertError(
    name,
    args.map((a) => (typeof a === "number" ? BigInt(a) : typeof a === "string" ? a.toLowerCase() : a)),
  );
}

function byteLen(hex: Hex): number {
  return (hex.length - 2) / 2;
}

function keyCode(k: KeyType | "none"): bigint {
  return BigInt(KEY_TYPES.indexOf(k));
}

function statusCode(s: DeviceStatus): bigint {
  return BigInt(DEVICE_STATUS.indexOf(s));
}

export class FakeRegistryClient implements RegistryClient {
  readonly chainId: bigint;
  readonly registryAddress: Hex;
  readonly releasesAddress: Hex;

  constructor(
    private readonly chain: FakeChain,
    readonly account: Hex,
  ) {
    this.chainId = chain.chainId;
    this.registryAddress = chain.registryAddress;
    this.releasesAddress = chain.releasesAddress;
  }

  domain(): VigilDomain {
    return vigilDomain(this.chainId, this.registryAddress);
  }

  private done(): TxResult {
    this.chain.block += 1n;
    return {
      txHash: keccak256(`0x${this.chain.block.toString(16).padStart(64, "0")}`) as Hex,
      blockNumber: this.chain.block,
      gasUsed: 0n,
    };
  }

  private async tx(f: () => void): Promise<TxResult> {
    f();
    return this.done();
  }

  private onlyAdmin(): void {
    if (this.account !== this.chain.admin)
      revert("AccessControlUnauthorizedAccount", this.account, DEFAULT_ADMIN_ROLE);
  }

  private onlyOperator(site: Hex): void {
    if (!this.chain.hasRole(operatorRoleId(site), this.account))
      revert("NotSiteOperator", this.account, site);
  }

  private operated(gatewayId: Hex): FakeGateway {
    const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
    if (!g) revert("GatewayUnknown", gatewayId);
    this.onlyOperator(g.site);
    return g;
  }

  private setRole(role: Hex, account: Hex, on: boolean): void {
    this.onlyAdmin();
    const set = this.chain.roles.get(role) ?? new Set<Hex>();
    const a = account.toLowerCase() as Hex;
    // AccessControl emits only on a change.
    if (on && !set.has(a)) this.chain.emit({ name: "RoleGranted", role, account: a });
    if (!on && set.has(a)) this.chain.emit({ name: "RoleRevoked", role, account: a });
    if (on) set.add(a);
    else set.delete(a);
    this.chain.roles.set(role, set);
  }

  // -------- roles
  grantOperator(site: Hex, account: Hex): Promise<TxResult> {
    return this.tx(() => this.setRole(operatorRoleId(site), account, true));
  }
  grantRole(role: RoleName, account: Hex): Promise<TxResult> {
    return this.tx(() => this.setRole(roleId(role), account, true));
  }
  revokeRole(role: RoleName, account: Hex): Promise<TxResult> {
    return this.tx(() => this.setRole(roleId(role), account, false));
  }
  async hasRole(role: RoleName, account: Hex): Promise<boolean> {
    return this.chain.hasRole(roleId(role), account.toLowerCase() as Hex);
  }

  // -------- devices
  private checkKey(keyType: KeyType, publicKey: Hex): Hex {
    const pk = publicKey.toLowerCase() as Hex;
    const n = byteLen(pk);
    if (keyType === "secp256k1" && n === 20 && BigInt(pk) !== 0n) return pk;
    if (keyType === "p256" && n === 64) {
      try {
        p256.Point.fromBytes(Uint8Array.of(4, ...hexToBytes(pk))).assertValidity();
        return pk;
      } catch {
        // falls through to the revert
      }
    }
    return revert("InvalidPublicKey", keyCode(keyType), pk);
  }

  registerGateway(a: RegisterGatewayArgs): Promise<TxResult> {
    return this.tx(() => {
      const id = a.gatewayId.toLowerCase() as Hex;
      if (BigInt(id) === 0n || BigInt(a.site) === 0n) revert("ZeroId");
      this.onlyOperator(a.site);
      if (this.chain.gateways.has(id)) revert("GatewayAlreadyRegistered", id);
      const uriLen = Buffer.byteLength(a.metadataURI);
      if (uriLen > MAX_URI) revert("TooLong", BigInt(uriLen), BigInt(MAX_URI));
      const publicKey = this.checkKey(a.keyType, a.publicKey);
      this.chain.gateways.set(id, {
        status: "active",
        keyType: a.keyType,
        keyEpoch: 0,
        publicKey,
        seq: 0n,
        head: ZERO_HASH,
        site: a.site.toLowerCase() as Hex,
        metadataURI: a.metadataURI,
        checkpoints: new Map(),
      });
      this.chain.emit({
        name: "GatewayRegistered",
        gatewayId: id,
        site: a.site.toLowerCase() as Hex,
        keyType: a.keyType,
        publicKey,
      });
    });
  }
  private rotate(g: FakeGateway, gatewayId: Hex, keyType: KeyType, publicKey: Hex): void {
    g.publicKey = this.checkKey(keyType, publicKey);
    g.keyType = keyType;
    g.keyEpoch += 1;
    this.chain.emit({
      name: "GatewayKeyRotated",
      gatewayId: gatewayId.toLowerCase() as Hex,
      keyEpoch: g.keyEpoch,
      keyType,
      publicKey: g.publicKey,
    });
  }
  rotateGatewayKey(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<TxResult> {
    return this.tx(() => {
      const g = this.operated(gatewayId);
      if (g.status === "revoked") revert("GatewayRevoked", gatewayId);
      this.rotate(g, gatewayId, keyType, publicKey);
    });
  }
  async keyRotationDigest(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<Hex> {
    const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
    return TypedDataEncoder.hash(
      this.domain(),
      {
        KeyRotation: [
          { name: "gatewayId", type: "bytes32" },
          { name: "keyType", type: "uint8" },
          { name: "publicKey", type: "bytes" },
          { name: "keyEpoch", type: "uint16" },
        ],
      },
      { gatewayId, keyType: keyCode(keyType), publicKey, keyEpoch: g?.keyEpoch ?? 0 },
    ) as Hex;
  }
  async rotateGatewayKeyBySignature(
    gatewayId: Hex,
    keyType: KeyType,
    publicKey: Hex,
    signature: Hex,
  ): Promise<TxResult> {
    const digest = await this.keyRotationDigest(gatewayId, keyType, publicKey);
    return this.tx(() => {
      const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
      if (!g || g.status !== "active") revert("GatewayNotActive", gatewayId, statusCode(g?.status ?? "none"));
      this.requireBytesSignature(g, gatewayId, digest, signature);
      this.rotate(g, gatewayId, keyType, publicKey);
    });
  }
  private setStatus(gatewayId: Hex, from: DeviceStatus, to: DeviceStatus): Promise<TxResult> {
    return this.tx(() => {
      const g = this.operated(gatewayId);
      if (g.status !== from) revert("InvalidStatusTransition", statusCode(g.status), statusCode(to));
      g.status = to;
      this.chain.emit({
        name: "GatewayStatusChanged",
        gatewayId: gatewayId.toLowerCase() as Hex,
        status: to,
      });
    });
  }
  suspendGateway(gatewayId: Hex): Promise<TxResult> {
    return this.setStatus(gatewayId, "active", "suspended");
  }
  resumeGateway(gatewayId: Hex): Promise<TxResult> {
    return this.setStatus(gatewayId, "suspended", "active");
  }
  revokeGateway(gatewayId: Hex): Promise<TxResult> {
    return this.tx(() => {
      const g = this.operated(gatewayId);
      if (g.status === "revoked") revert("GatewayRevoked", gatewayId);
      g.status = "revoked";
      this.chain.emit({
        name: "GatewayStatusChanged",
        gatewayId: gatewayId.toLowerCase() as Hex,
        status: "revoked",
      });
    });
  }
  registerSensor(
    gatewayId: Hex,
    sensorId: number,
    keyType: KeyType | "none",
    publicKey: Hex,
  ): Promise<TxResult> {
    return this.tx(() => {
      const g = this.operated(gatewayId);
      if (g.status === "revoked") revert("GatewayRevoked", gatewayId);
      const k = `${gatewayId.toLowerCase()}/${sensorId}`;
      if (this.chain.sensors.has(k)) revert("SensorAlreadyRegistered", gatewayId, BigInt(sensorId));
      if (byteLen(publicKey) > 128) revert("TooLong", BigInt(byteLen(publicKey)), 128n);
      if ((keyType === "none") !== (byteLen(publicKey) === 0))
        revert("InvalidPublicKey", keyCode(keyType), publicKey);
      this.chain.sensors.set(k, { status: "active", keyType, publicKey: publicKey.toLowerCase() as Hex });
      this.chain.emit({
        name: "SensorRegistered",
        gatewayId: gatewayId.toLowerCase() as Hex,
        sensorId,
        keyType,
        publicKey: publicKey.toLowerCase() as Hex,
      });
    });
  }
  setSensorStatus(gatewayId: Hex, sensorId: number, status: DeviceStatus): Promise<TxResult> {
    return this.tx(() => {
      this.operated(gatewayId);
      const s = this.chain.sensors.get(`${gatewayId.toLowerCase()}/${sensorId}`);
      if (!s) revert("SensorUnknown", gatewayId, BigInt(sensorId));
      if (s.status === "revoked" || status === "none" || status === s.status) {
        revert("InvalidStatusTransition", statusCode(s.status), statusCode(status));
      }
      s.status = status;
      this.chain.emit({
        name: "SensorStatusChanged",
        gatewayId: gatewayId.toLowerCase() as Hex,
        sensorId,
        status,
      });
    });
  }
  async getGateway(gatewayId: Hex): Promise<GatewayRecord> {
    const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
    if (!g) {
      return {
        status: "none",
        keyType: "none",
        keyEpoch: 0,
        seq: 0n,
        head: ZERO_HASH,
        signer: null,
        p256PublicKey: null,
        site: ZERO_HASH,
        metadataURI: "",
      };
    }
    return {
      status: g.status,
      keyType: g.keyType,
      keyEpoch: g.keyEpoch,
      seq: g.seq,
      head: g.head,
      signer: g.keyType === "secp256k1" ? g.publicKey : null,
      p256PublicKey: g.keyType === "p256" ? g.publicKey : null,
      site: g.site,
      metadataURI: g.metadataURI,
    };
  }
  async getSensor(gatewayId: Hex, sensorId: number): Promise<SensorRecord> {
    const s = this.chain.sensors.get(`${gatewayId.toLowerCase()}/${sensorId}`);
    return s ? { ...s } : { status: "none", keyType: "none", publicKey: "0x" };
  }

  // -------- signatures (same rules as VigilRegistry._checkCompact / _checkBytes)
  /** 0 valid, 1 invalid, 2 malleable. */
  private checkCompact(g: FakeGateway, digest: Hex, r: Hex, vs: Hex): number {
    const vsN = BigInt(vs);
    if (g.keyType === "secp256k1") {
      const s = vsN & ((1n << 255n) - 1n);
      if (s > SECP_N / 2n) return 2;
      const v = 27n + (vsN >> 255n);
      const sig = `${r}${s.toString(16).padStart(64, "0")}${v.toString(16)}` as Hex;
      return verifyDigest("secp256k1", g.publicKey, digest, sig) ? 0 : 1;
    }
    if (vsN > P256_N / 2n) return 2;
    return verifyDigest("p256", g.publicKey, digest, `${r}${vs.slice(2)}` as Hex) ? 0 : 1;
  }
  private checkBytes(g: FakeGateway, digest: Hex, signature: Hex): number {
    const n = byteLen(signature);
    if (g.keyType === "secp256k1") {
      if (n !== 65) return 3;
      const s = BigInt(`0x${signature.slice(66, 130)}`);
      const v = Number.parseInt(signature.slice(130, 132), 16);
      if (s > SECP_N / 2n) return 2;
      if (v !== 27 && v !== 28) return 1;
      const vs = s | (BigInt(v - 27) << 255n);
      return this.checkCompact(
        g,
        digest,
        `0x${signature.slice(2, 66)}`,
        `0x${vs.toString(16).padStart(64, "0")}`,
      );
    }
    if (n !== 64) return 3;
    return this.checkCompact(g, digest, `0x${signature.slice(2, 66)}`, `0x${signature.slice(66, 130)}`);
  }
  private requireCode(gatewayId: Hex, code: number, length: number): void {
    if (code === 2) revert("MalleableSignature", gatewayId);
    if (code === 3) revert("InvalidSignatureLength", gatewayId, BigInt(length));
    if (code !== 0) revert("InvalidSignature", gatewayId);
  }
  private requireBytesSignature(g: FakeGateway, gatewayId: Hex, digest: Hex, signature: Hex): void {
    this.requireCode(gatewayId, this.checkBytes(g, digest, signature), byteLen(signature));
  }

  // -------- anchoring
  private anchorOne(h: BatchHeader, signature: Hex): { headerHash: Hex; head: Hex } {
    const id = h.gatewayId.toLowerCase() as Hex;
    const c = toCompactSignature(signature);
    const g = this.chain.gateways.get(id);
    if (!g || g.status !== "active") revert("GatewayNotActive", id, statusCode(g?.status ?? "none"));
    if (h.seq !== g.seq + 1n) revert("UnexpectedSequence", id, g.seq + 1n, h.seq);
    if (h.prevHead.toLowerCase() !== g.head) revert("UnexpectedPrevHead", id, g.head, h.prevHead);
    if (BigInt(h.root) === 0n) revert("ZeroRoot", id);
    if (h.leafCount === 0) revert("EmptyBatch", id);
    if (h.firstTimestamp > h.lastTimestamp) revert("InvalidTimeRange", id, h.firstTimestamp, h.lastTimestamp);
    this.requireCode(id, this.checkCompact(g, batchDigest(this.domain(), h), c.r, c.vs), 64);
    const headerHash = hashBatchHeader(h);
    const head = chainHead(g.head, headerHash);
    g.seq = h.seq;
    g.head = head;
    return { headerHash, head };
  }
  async anchor(header: BatchHeader, signature: Hex): Promise<AnchorResult> {
    const r = this.anchorOne(header, signature);
    return { ...this.done(), seq: header.seq, ...r };
  }
  async anchorMany(items: readonly { header: BatchHeader; signature: Hex }[]): Promise<TxResult> {
    // All or nothing, like a reverted transaction.
    const snapshot = new Map([...this.chain.gateways].map(([k, g]) => [k, { seq: g.seq, head: g.head }]));
    try {
      for (const i of items) this.anchorOne(i.header, i.signature);
    } catch (e) {
      for (const [k, s] of snapshot) Object.assign(this.chain.gateways.get(k) ?? {}, s);
      throw e;
    }
    return this.done();
  }
  async getHead(gatewayId: Hex): Promise<{ seq: bigint; head: Hex }> {
    const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
    return { seq: g?.seq ?? 0n, head: g?.head ?? ZERO_HASH };
  }
  async nextSeq(gatewayId: Hex): Promise<bigint> {
    return (await this.getHead(gatewayId)).seq + 1n;
  }
  checkpoint(gatewayId: Hex): Promise<TxResult> {
    return this.tx(() => {
      const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
      if (!g || g.seq === 0n) revert("NothingAnchored", gatewayId);
      g.checkpoints.set(g.seq, g.head);
    });
  }
  async verifyBatch(header: BatchHeader, later: readonly Hex[]): Promise<boolean> {
    if (header.seq === 0n) return false;
    const g = this.chain.gateways.get(header.gatewayId.toLowerCase() as Hex);
    if (!g) return false;
    const target = header.seq + BigInt(later.length);
    const expected = target === g.seq ? g.head : g.checkpoints.get(target);
    if (!expected) return false;
    let acc = chainHead(header.prevHead, hashBatchHeader(header));
    for (const h of later) acc = chainHead(acc, h);
    return acc === expected;
  }
  async isLeafIncluded(
    header: BatchHeader,
    later: readonly Hex[],
    leaf: Hex,
    proof: readonly Hex[],
  ): Promise<boolean> {
    let acc = leaf.toLowerCase();
    for (const p of proof) {
      const [a, b] = BigInt(acc) < BigInt(p) ? [acc, p] : [p, acc];
      acc = keccak256(`${a}${b.slice(2)}`);
    }
    return acc === header.root.toLowerCase() && (await this.verifyBatch(header, later));
  }

  // -------- access
  private checkGrant(reader: Hex, expiresAt: bigint): void {
    if (BigInt(reader) === 0n || expiresAt <= this.chain.now()) revert("InvalidGrant", reader, expiresAt);
  }
  grantSiteAccess(site: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult> {
    return this.tx(() => {
      this.onlyOperator(site);
      this.checkGrant(reader, expiresAt);
      this.chain.siteAccess.set(`${site.toLowerCase()}/${reader.toLowerCase()}`, expiresAt);
      this.chain.emit({
        name: "SiteAccessGranted",
        site: site.toLowerCase() as Hex,
        reader: reader.toLowerCase() as Hex,
        expiresAt: Number(expiresAt),
      });
    });
  }
  revokeSiteAccess(site: Hex, reader: Hex): Promise<TxResult> {
    return this.tx(() => {
      this.onlyOperator(site);
      this.chain.siteAccess.delete(`${site.toLowerCase()}/${reader.toLowerCase()}`);
      this.chain.emit({
        name: "SiteAccessRevoked",
        site: site.toLowerCase() as Hex,
        reader: reader.toLowerCase() as Hex,
      });
    });
  }
  grantGatewayAccess(gatewayId: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult> {
    return this.tx(() => {
      this.operated(gatewayId);
      this.checkGrant(reader, expiresAt);
      this.chain.gatewayAccess.set(`${gatewayId.toLowerCase()}/${reader.toLowerCase()}`, expiresAt);
      this.chain.emit({
        name: "GatewayAccessGranted",
        gatewayId: gatewayId.toLowerCase() as Hex,
        reader: reader.toLowerCase() as Hex,
        expiresAt: Number(expiresAt),
      });
    });
  }
  revokeGatewayAccess(gatewayId: Hex, reader: Hex): Promise<TxResult> {
    return this.tx(() => {
      this.operated(gatewayId);
      this.chain.gatewayAccess.delete(`${gatewayId.toLowerCase()}/${reader.toLowerCase()}`);
      this.chain.emit({
        name: "GatewayAccessRevoked",
        gatewayId: gatewayId.toLowerCase() as Hex,
        reader: reader.toLowerCase() as Hex,
      });
    });
  }
  async isReaderAllowed(reader: Hex, gatewayId: Hex): Promise<boolean> {
    const r = reader.toLowerCase() as Hex;
    if (this.chain.hasRole(roleId("auditor"), r)) return true;
    const g = this.chain.gateways.get(gatewayId.toLowerCase() as Hex);
    if (!g) return false;
    const now = this.chain.now();
    return (
      (this.chain.gatewayAccess.get(`${gatewayId.toLowerCase()}/${r}`) ?? 0n) > now ||
      (this.chain.siteAccess.get(`${g.site}/${r}`) ?? 0n) > now
    );
  }

  // -------- releases
  private requireRole(role: RoleName): void {
    const id = roleId(role);
    if (!this.chain.hasRole(id, this.account)) revert("MissingRole", this.account, id);
  }
  private existing(releaseId: bigint): FakeRelease {
    const r = this.chain.releases[Number(releaseId) - 1];
    if (releaseId < 1n || !r) revert("ReleaseUnknown", releaseId);
    return r;
  }
  async proposeRelease(input: ReleaseInput): Promise<TxResult & { releaseId: bigint }> {
    const key = `${input.kind}/${input.target.toLowerCase()}`;
    this.requireRole("releaseManager");
    const latest = this.chain.latestVersion.get(key) ?? 0n;
    const kind = BigInt(RELEASE_KINDS.indexOf(input.kind));
    if (input.version <= latest) revert("VersionNotIncreasing", kind, input.target, latest, input.version);
    if (input.version - latest > MAX_VERSION_STEP)
      revert("VersionStepTooLarge", kind, input.target, latest, input.version);
    if (BigInt(input.contentHash) === 0n) revert("ZeroContentHash");
    if (input.size === 0n || input.size > this.chain.maxReleaseSize)
      revert("InvalidSize", input.size, this.chain.maxReleaseSize);
    if (input.uris.length === 0 || input.uris.length > 8) revert("InvalidUri", BigInt(input.uris.length));
    input.uris.forEach((u, i) => {
      const ok =
        Buffer.byteLength(u) <= MAX_URI &&
        ["https://", "ipfs://", "file://"].some((p) => u.startsWith(p) && u.length > p.length);
      if (!ok) revert("InvalidUri", BigInt(i));
    });
    const mLen = Buffer.byteLength(input.metrics);
    if (mLen > MAX_URI) revert("TooLong", BigInt(mLen), BigInt(MAX_URI));
    this.chain.latestVersion.set(key, input.version);
    const id = BigInt(this.chain.releases.length + 1);
    this.chain.releases.push({
      ...input,
      target: input.target.toLowerCase() as Hex,
      contentHash: input.contentHash.toLowerCase() as Hex,
      trainingDataHash: input.trainingDataHash.toLowerCase() as Hex,
      uris: [...input.uris],
      id,
      status: "proposed",
      approvals: 0,
      proposer: this.account,
      approvedBy: [],
    });
    return { ...this.done(), releaseId: id };
  }
  /** Approvals of `r` by accounts holding the approver role now (VigilReleases.currentApprovals). */
  private countCurrent(r: FakeRelease): number {
    const role = roleId("releaseApprover");
    return r.approvedBy.filter((a) => this.chain.hasRole(role, a)).length;
  }
  private activate(r: FakeRelease): void {
    r.status = "active";
    this.chain.emit({
      name: "ReleaseActivated",
      releaseId: r.id.toString(),
      kind: r.kind,
      target: r.target,
      version: r.version.toString(),
    });
    const key = `${r.kind}/${r.target}`;
    const highest = this.chain.highestActivated.get(key);
    const highestVersion = highest ? (this.chain.releases[Number(highest) - 1]?.version ?? 0n) : 0n;
    if (!highest || highestVersion < r.version) this.chain.highestActivated.set(key, r.id);
  }
  approveRelease(releaseId: bigint): Promise<TxResult> {
    return this.tx(() => {
      this.requireRole("releaseApprover");
      const r = this.existing(releaseId);
      if (r.status !== "proposed")
        revert("ReleaseNotInStatus", releaseId, BigInt(RELEASE_STATUS.indexOf(r.status)));
      if (r.proposer === this.account) revert("SelfApproval", releaseId, this.account);
      if (r.approvedBy.includes(this.account)) revert("AlreadyApproved", releaseId, this.account);
      r.approvedBy.push(this.account);
      r.approvals += 1;
      if (this.countCurrent(r) >= this.chain.threshold) this.activate(r);
    });
  }
  activateRelease(releaseId: bigint): Promise<TxResult> {
    return this.tx(() => {
      const r = this.existing(releaseId);
      if (r.status !== "proposed")
        revert("ReleaseNotInStatus", releaseId, BigInt(RELEASE_STATUS.indexOf(r.status)));
      const current = this.countCurrent(r);
      if (current < this.chain.threshold)
        revert("BelowThreshold", releaseId, BigInt(current), BigInt(this.chain.threshold));
      this.activate(r);
    });
  }
  async currentApprovals(releaseId: bigint): Promise<number> {
    const r = this.chain.releases[Number(releaseId) - 1];
    return releaseId < 1n || !r ? 0 : this.countCurrent(r);
  }
  revokeRelease(releaseId: bigint, reason: string): Promise<TxResult> {
    return this.tx(() => {
      if (this.account !== this.chain.admin) this.requireRole("releaseManager");
      const r = this.existing(releaseId);
      if (r.status === "revoked") revert("ReleaseNotInStatus", releaseId, 3n);
      if (Buffer.byteLength(reason) > MAX_URI)
        revert("TooLong", BigInt(Buffer.byteLength(reason)), BigInt(MAX_URI));
      r.status = "revoked";
      this.chain.emit({ name: "ReleaseRevoked", releaseId: releaseId.toString() });
    });
  }
  setApprovalThreshold(threshold: number): Promise<TxResult> {
    return this.tx(() => {
      if (this.account !== this.chain.admin) revert("NotAdmin", this.account);
      if (threshold === 0) revert("InvalidThreshold", 0n);
      this.chain.threshold = threshold;
    });
  }
  async getRelease(releaseId: bigint): Promise<ReleaseRecord | null> {
    const r = this.chain.releases[Number(releaseId) - 1];
    if (releaseId < 1n || !r) return null;
    const { approvedBy: _a, ...rest } = r;
    return { ...rest, uris: [...r.uris] };
  }
  async activeRelease(kind: ReleaseKind, target: Hex): Promise<ReleaseRecord | null> {
    const id = this.chain.highestActivated.get(`${kind}/${target.toLowerCase()}`);
    const r = id ? await this.getRelease(id) : null;
    return r?.status === "active" ? r : null;
  }
  async installNonce(gatewayId: Hex): Promise<bigint> {
    return this.chain.installNonces.get(gatewayId.toLowerCase() as Hex) ?? 0n;
  }
  async installReportDigest(gatewayId: Hex, releaseId: bigint, nonce: bigint): Promise<Hex> {
    const contentHash = this.chain.releases[Number(releaseId) - 1]?.contentHash ?? ZERO_HASH;
    return TypedDataEncoder.hash(
      { name: "VigilReleases", version: "1", chainId: this.chainId, verifyingContract: this.releasesAddress },
      {
        InstallReport: [
          { name: "gatewayId", type: "bytes32" },
          { name: "releaseId", type: "uint256" },
          { name: "contentHash", type: "bytes32" },
          { name: "nonce", type: "uint64" },
        ],
      },
      { gatewayId, releaseId, contentHash, nonce },
    ) as Hex;
  }
  async reportInstalled(gatewayId: Hex, releaseId: bigint, nonce: bigint, signature: Hex): Promise<TxResult> {
    const digest = await this.installReportDigest(gatewayId, releaseId, nonce);
    return this.tx(() => {
      const r = this.existing(releaseId);
      if (r.status !== "active")
        revert("ReleaseNotInStatus", releaseId, BigInt(RELEASE_STATUS.indexOf(r.status)));
      const id = gatewayId.toLowerCase() as Hex;
      const expected = (this.chain.installNonces.get(id) ?? 0n) + 1n;
      if (nonce !== expected) revert("UnexpectedNonce", id, expected, nonce);
      const g = this.chain.gateways.get(id);
      if (!g || g.status !== "active" || this.checkBytes(g, digest, signature) !== 0)
        revert("InvalidReportSignature", id);
      this.chain.installNonces.set(id, expected);
      this.chain.installed.set(`${id}/${r.kind}`, releaseId);
    });
  }
  async installedRelease(gatewayId: Hex, kind: ReleaseKind): Promise<bigint> {
    return this.chain.installed.get(`${gatewayId.toLowerCase()}/${kind}`) ?? 0n;
  }

  async now(): Promise<bigint> {
    return this.chain.now();
  }
  async close(): Promise<void> {}
}
