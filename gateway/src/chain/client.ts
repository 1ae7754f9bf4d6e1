/**
 * The chain client the gateway uses, as one interface with two implementations:
 * - {@link EthersRegistryClient} (ethers v6, any EVM RPC) in ethers-client.ts,
 * - {@link FakeRegistryClient} (in memory, same rules and errors) in fake-client.ts,
 * both run through the shared suite test/contracts/registry-client.suite.ts.
 *
 * Reverts surface as `ContractRevertError` with the Solidity custom error's name and arguments.
 */
import { AbiCoder, keccak256, id as keccakId } from "ethers";
import type { KeyType } from "./keys.ts";
import type { BatchHeader, VigilDomain } from "./eip712.ts";
import type { Hex } from "../core/hex.ts";

export type DeviceStatus = "none" | "active" | "suspended" | "revoked";
export type ReleaseKind = "model" | "firmware";
export type ReleaseStatus = "none" | "proposed" | "active" | "revoked";

export const DEVICE_STATUS: readonly DeviceStatus[] = ["none", "active", "suspended", "revoked"];
export const RELEASE_KINDS: readonly ReleaseKind[] = ["model", "firmware"];
export const RELEASE_STATUS: readonly ReleaseStatus[] = ["none", "proposed", "active", "revoked"];
export const KEY_TYPES: readonly (KeyType | "none")[] = ["none", "secp256k1", "p256"];

/** Roles held in the registry (the per-site operator role is separate, see `grantOperator`). */
export type RoleName = "auditor" | "releaseManager" | "releaseApprover";

export interface GatewayRecord {
  status: DeviceStatus;
  keyType: KeyType | "none";
  keyEpoch: number;
  seq: bigint;
  head: Hex;
  /** secp256k1 address (lowercase), or null. */
  signer: Hex | null;
  /** P-256 x‖y (64 bytes), or null. */
  p256PublicKey: Hex | null;
  site: Hex;
  metadataURI: string;
}

export interface SensorRecord {
  status: DeviceStatus;
  keyType: KeyType | "none";
  publicKey: Hex;
}

export interface TxResult {
  txHash: Hex;
  blockNumber: bigint;
  gasUsed: bigint;
}

export interface AnchorResult extends TxResult {
  seq: bigint;
  headerHash: Hex;
  head: Hex;
}

export interface ReleaseInput {
  kind: ReleaseKind;
  target: Hex;
  version: bigint;
  /** sha256 of the artifact. */
  contentHash: Hex;
  size: bigint;
  trainingDataHash: Hex;
  uris: string[];
  metrics: string;
}

/**
 * Largest allowed increase of a proposed version over the latest one of the same (kind, target):
 * `VigilReleases.MAX_VERSION_STEP` (2^32). A bigger step reverts `VersionStepTooLarge`.
 */
export const MAX_VERSION_STEP = 1n << 32n;

export interface ReleaseRecord extends ReleaseInput {
  id: bigint;
  status: ReleaseStatus;
  /**
   * Approvals recorded, including those of accounts that have since lost the approver role; see
   * `currentApprovals` for the ones that count.
   */
  approvals: number;
  proposer: Hex;
}

export interface RegisterGatewayArgs {
  gatewayId: Hex;
  site: Hex;
  keyType: KeyType;
  /** 20-byte address (secp256k1) or 64-byte x‖y (P-256), see keys.registrationPublicKey. */
  publicKey: Hex;
  metadataURI: string;
}

export interface RegistryClient {
  /** Chain id the client talks to. */
  readonly chainId: bigint;
  /** Registry address (lowercase). */
  readonly registryAddress: Hex;
  /** Releases contract address (lowercase). */
  readonly releasesAddress: Hex;
  /** The account that sends transactions (lowercase). */
  readonly account: Hex;
  /** EIP-712 domain batch headers are signed for. */
  domain(): VigilDomain;

  // -------- roles (registry default admin)
  grantOperator(site: Hex, account: Hex): Promise<TxResult>;
  grantRole(role: RoleName, account: Hex): Promise<TxResult>;
  revokeRole(role: RoleName, account: Hex): Promise<TxResult>;
  hasRole(role: RoleName, account: Hex): Promise<boolean>;

  // -------- devices (site operator)
  registerGateway(args: RegisterGatewayArgs): Promise<TxResult>;
  rotateGatewayKey(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<TxResult>;
  /** Rotation authorised by the current key's signature over `keyRotationDigest`. */
  rotateGatewayKeyBySignature(
    gatewayId: Hex,
    keyType: KeyType,
    publicKey: Hex,
    signature: Hex,
  ): Promise<TxResult>;
  keyRotationDigest(gatewayId: Hex, keyType: KeyType, publicKey: Hex): Promise<Hex>;
  suspendGateway(gatewayId: Hex): Promise<TxResult>;
  resumeGateway(gatewayId: Hex): Promise<TxResult>;
  revokeGateway(gatewayId: Hex): Promise<TxResult>;
  registerSensor(
    gatewayId: Hex,
    sensorId: number,
    keyType: KeyType | "none",
    publicKey: Hex,
  ): Promise<TxResult>;
  setSensorStatus(gatewayId: Hex, sensorId: number, status: DeviceStatus): Promise<TxResult>;
  getGateway(gatewayId: Hex): Promise<GatewayRecord>;
  getSensor(gatewayId: Hex, sensorId: number): Promise<SensorRecord>;

  // -------- anchoring (any sender; the signature is the authority)
  /** Anchors one batch; `signature` as produced by keys.signDigest (65 or 64 bytes). */
  anchor(header: BatchHeader, signature: Hex): Promise<AnchorResult>;
  /** Anchors several batches in one transaction. */
  anchorMany(items: readonly { header: BatchHeader; signature: Hex }[]): Promise<TxResult>;
  /** Last anchored seq (0 = none) and head. */
  getHead(gatewayId: Hex): Promise<{ seq: bigint; head: Hex }>;
  /** The seq the next anchor must carry. */
  nextSeq(gatewayId: Hex): Promise<bigint>;
  checkpoint(gatewayId: Hex): Promise<TxResult>;
  verifyBatch(header: BatchHeader, laterHeaderHashes: readonly Hex[]): Promise<boolean>;
  isLeafIncluded(
    header: BatchHeader,
    laterHeaderHashes: readonly Hex[],
    leaf: Hex,
    proof: readonly Hex[],
  ): Promise<boolean>;

  // -------- reader access (site operator)
  grantSiteAccess(site: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult>;
  revokeSiteAccess(site: Hex, reader: Hex): Promise<TxResult>;
  grantGatewayAccess(gatewayId: Hex, reader: Hex, expiresAt: bigint): Promise<TxResult>;
  revokeGatewayAccess(gatewayId: Hex, reader: Hex): Promise<TxResult>;
  /** Whether `reader` may subscribe to data of `gatewayId` now (MQTT authorisation). */
  isReaderAllowed(reader: Hex, gatewayId: Hex): Promise<boolean>;

  // -------- releases
  proposeRelease(input: ReleaseInput): Promise<TxResult & { releaseId: bigint }>;
  /**
   * Approves a Proposed release; it activates when the approvals of accounts holding the approver role
   * now reach the threshold (approvals of accounts that lost the role do not count).
   */
  approveRelease(releaseId: bigint): Promise<TxResult>;
  /**
   * Re-checks a Proposed release and activates it if the approvals of current approvers reach the
   * threshold (any account; e.g. after the threshold was lowered). Reverts `BelowThreshold` otherwise.
   */
  activateRelease(releaseId: bigint): Promise<TxResult>;
  /** Approvals of `releaseId` by accounts that hold the approver role now. */
  currentApprovals(releaseId: bigint): Promise<number>;
  revokeRelease(releaseId: bigint, reason: string): Promise<TxResult>;
  setApprovalThreshold(threshold: number): Promise<TxResult>;
  getRelease(releaseId: bigint): Promise<ReleaseRecord | null>;
  /**
   * Current release for (kind, target): the highest-version release ever activated there while it is
   * still Active; null when none activated or that one was revoked (no fallback to older releases).
   */
  activeRelease(kind: ReleaseKind, target: Hex): Promise<ReleaseRecord | null>;
  installNonce(gatewayId: Hex): Promise<bigint>;
  installReportDigest(gatewayId: Hex, releaseId: bigint, nonce: bigint): Promise<Hex>;
  /** Signed report that the gateway runs `releaseId`. */
  reportInstalled(gatewayId: Hex, releaseId: bigint, nonce: bigint, signature: Hex): Promise<TxResult>;
  installedRelease(gatewayId: Hex, kind: ReleaseKind): Promise<bigint>;

  /** Seconds of the chain clock (block.timestamp semantics). */
  now(): Promise<bigint>;
  /** Releases resources (provider polling). */
  close(): Promise<void>;
}

/** Role ids as in VigilRegistry. */
export const ROLE_STRINGS: Record<RoleName, string> = {
  auditor: "VIGIL_AUDITOR",
  releaseManager: "VIGIL_RELEASE_MANAGER",
  releaseApprover: "VIGIL_RELEASE_APPROVER",
};

/** Role id of `operatorRole(site)` computed off chain. */
export function operatorRoleId(site: Hex): Hex {
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [keccakId("VIGIL_OPERATOR"), site]),
  ) as Hex;
}

/** Role id of a named registry role. */
export function roleId(role: RoleName): Hex {
  return keccakId(ROLE_STRINGS[role]) as Hex;
}
