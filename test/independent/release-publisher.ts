// An independent vendor's release publisher for Vigil gateways, written from the documents alone
// (gateway/src/updates/README.md "Release layout", "Publishing and approving"; contracts/README.md
// "Signatures" and "Roles"), without reading the gateway's or the contracts' code: a check that
// the documents are exact. It imports only third-party libraries (lint:deps forbids anything of
// ours): the ABI is written by hand from the contracts README's "Signatures" block.
// Where it had to guess, the documents now say it: that updates need attest.enabled, the proposal
// id (ReleaseProposed) and installedRelease's shape, that the pinned manifest's name must end in
// .manifest.json, which metrics fields the gateway reads, that a release of the live bytes or
// with too few approvals is not seen at all (no NOT_ACTIVE), and who sets security_counter.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  Contract,
  keccak256,
  toUtf8Bytes,
  type ContractRunner,
  type ContractTransactionReceipt,
  type ContractTransactionResponse,
  type Log,
} from "ethers";

/** contracts/README.md "Signatures", the lines a publisher needs (VigilRegistry, VigilReleases). */
export const REGISTRY_ABI = [
  "function RELEASE_MANAGER_ROLE() view returns (bytes32)",
  "function RELEASE_APPROVER_ROLE() view returns (bytes32)",
  "function grantRole(bytes32 role, address account)",
  "function hasRole(bytes32 role, address account) view returns (bool)",
];
export const RELEASES_ABI = [
  "function propose((uint8 kind, bytes32 target, uint64 version, bytes32 contentHash, uint64 size, bytes32 trainingDataHash, string[] uris, string metrics) input) returns (uint256 releaseId)",
  "function approve(uint256 releaseId)",
  "function activate(uint256 releaseId)",
  "function revoke(uint256 releaseId, string reason)",
  "function setApprovalThreshold(uint16 threshold)",
  "function getRelease(uint256 releaseId) view returns ((uint8 kind, uint8 status, uint16 approvals, uint64 version, uint64 size, address proposer, bytes32 target, bytes32 contentHash, bytes32 trainingDataHash, string[] uris, string metrics))",
  "function currentApprovals(uint256 releaseId) view returns (uint16)",
  "function activeRelease(uint8 kind, bytes32 target) view returns (uint256)",
  "function installedRelease(bytes32 gatewayId, uint8 kind) view returns (uint256)",
  "event ReleaseProposed(uint256 indexed releaseId, uint8 indexed kind, bytes32 indexed target, uint64 version, bytes32 contentHash, uint64 size, bytes32 trainingDataHash, string[] uris, string metrics, address proposer)",
  "event ReleaseApproved(uint256 indexed releaseId, address indexed approver, uint16 approvals)",
  "event ReleaseActivated(uint256 indexed releaseId, uint8 indexed kind, bytes32 indexed target, uint64 version)",
  "event InstallReported(bytes32 indexed gatewayId, uint256 indexed releaseId, uint8 indexed kind, uint64 version, uint64 nonce)",
  "error MissingRole(address account, bytes32 role)",
  "error ReleaseUnknown(uint256 releaseId)",
  "error ReleaseNotInStatus(uint256 releaseId, uint8 status)",
  "error SelfApproval(uint256 releaseId, address approver)",
  "error AlreadyApproved(uint256 releaseId, address approver)",
  "error BelowThreshold(uint256 releaseId, uint16 approvals, uint16 threshold)",
  "error VersionStepTooLarge(uint8 kind, bytes32 target, uint64 latest, uint64 given)",
  "error VersionNotIncreasing(uint8 kind, bytes32 target, uint64 latest, uint64 given)",
  "error ZeroContentHash()",
  "error InvalidSize(uint64 size, uint64 maxSize)",
  "error InvalidUri(uint256 index)",
  "error TooLong(uint256 length, uint256 max)",
  "error NotAdmin(address account)",
];

/** contracts/README.md "Fixed interfaces": enum numbers. */
export const KIND = { model: 0, firmware: 1 } as const;
export const STATUS = { none: 0, proposed: 1, active: 2, revoked: 3 } as const;

export interface ReleaseInput {
  kind: number;
  target: string;
  version: bigint;
  contentHash: string;
  size: bigint;
  trainingDataHash: string;
  uris: string[];
  metrics: string;
}

const sha256 = (b: Uint8Array | string): Buffer => createHash("sha256").update(b).digest();
const hex32 = (b: Uint8Array): string => `0x${Buffer.from(b).toString("hex")}`;

/** updates README "Release layout": `target` = keccak256("vigil:<kind>:<name>"). */
export function targetId(kind: keyof typeof KIND, name: string): string {
  return keccak256(toUtf8Bytes(`vigil:${kind}:${name}`));
}

/** `major·10^6 + minor·10^3 + patch`, each part below 1000. */
export function packVersion(version: string): bigint {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new Error(`version ${version} is not major.minor.patch`);
  const [maj, min, pat] = [m[1], m[2], m[3]].map(Number) as [number, number, number];
  if (min > 999 || pat > 999 || maj > 999) throw new Error(`version ${version}: a part above 999`);
  return BigInt(maj) * 1_000_000n + BigInt(min) * 1000n + BigInt(pat);
}

const B32 = "abcdefghijklmnopqrstuvwxyz234567";
function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The CIDv1 `ipfs add --cid-version=1` prints (updates README, `publish`): Kubo's CIDv1 uses raw
 * leaves and 256 KiB chunks, so a file of at most one chunk is one raw block: multibase "b"
 * (base32 lower), version 1, codec raw (0x55), multihash sha2-256 (0x12, 32 bytes).
 * Larger files (a dag-pb tree) are not needed by this publisher and refused.
 */
export function cidV1(bytes: Uint8Array): string {
  if (bytes.length > 256 * 1024) throw new Error("cidV1: only single-chunk files (≤ 256 KiB)");
  return `b${base32(Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), sha256(bytes)]))}`;
}

interface Manifest {
  name: string;
  version: string;
  devices: { profiles: string[] };
  model: { file: string; sha256: string; bytes: number; precision?: string; variants?: { file: string }[] };
  training?: { data?: { file: string; sha256: string }[] };
  metrics?: { rmse?: number };
}

/** `trainingDataHash`: sha256 over the manifest's `training.data` as "<file> <sha256>\n" lines. */
export function trainingDataHash(manifest: Manifest): string {
  const lines = (manifest.training?.data ?? []).map((d) => `${d.file} ${d.sha256}\n`).join("");
  return hex32(sha256(lines));
}

export interface ModelRelease {
  input: ReleaseInput;
  dir: string;
  modelPath: string;
  manifestPath: string;
  manifestBytes: Buffer;
}

/**
 * A model release in `dir`: the ONNX file and its manifest side by side (updates README: "The
 * manifest is published beside the model (same folder for file://"), the manifest's `version` the
 * one given, its `model` describing the file; `uris` default to file:// of the model.
 * `tamper` lets a test break one documented rule on purpose.
 */
export function buildModelRelease(opts: {
  onnx: Buffer;
  /** The ONNX file's name and precision when it is not the manifest's `model.file` (a variant). */
  file?: { name: string; precision: string };
  manifest: Manifest;
  version: string;
  profile: string;
  dir: string;
  uris?: (modelPath: string) => string[];
  tamper?: { contentHash?: string; manifestVersion?: string };
}): ModelRelease {
  mkdirSync(opts.dir, { recursive: true });
  const manifest: Manifest = structuredClone(opts.manifest);
  manifest.version = opts.tamper?.manifestVersion ?? opts.version;
  if (opts.file) [manifest.model.file, manifest.model.precision] = [opts.file.name, opts.file.precision];
  manifest.model.sha256 = sha256(opts.onnx).toString("hex");
  manifest.model.bytes = opts.onnx.length;
  // Variants are not part of the release (README step 3): publish the main file only.
  delete manifest.model.variants;
  if (!manifest.devices.profiles.includes(opts.profile))
    throw new Error(`the manifest does not serve profile ${opts.profile}`);
  const modelPath = join(opts.dir, manifest.model.file);
  writeFileSync(modelPath, opts.onnx);
  const manifestFile = `${manifest.model.file.replace(/\.onnx$/, "")}.manifest.json`;
  const manifestPath = join(opts.dir, manifestFile);
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(manifestPath, manifestBytes);
  const metrics = JSON.stringify({
    manifest: {
      file: manifestFile,
      sha256: sha256(manifestBytes).toString("hex"),
      cid: cidV1(manifestBytes),
    },
    precision: manifest.model.precision ?? "float32",
    rmse: manifest.metrics?.rmse,
  });
  if (Buffer.byteLength(metrics) > 512) throw new Error("metrics above 512 bytes");
  const input: ReleaseInput = {
    kind: KIND.model,
    target: targetId("model", opts.profile),
    version: packVersion(opts.version),
    contentHash: opts.tamper?.contentHash ?? hex32(sha256(opts.onnx)),
    size: BigInt(opts.onnx.length),
    trainingDataHash: trainingDataHash(manifest),
    uris: opts.uris?.(modelPath) ?? [pathToFileURL(modelPath).href],
    metrics,
  };
  return { input, dir: opts.dir, modelPath, manifestPath, manifestBytes };
}

/** A sent transaction's receipt; a timeout rather than a wait without end. */
export async function mined(sent: Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> {
  const receipt = await (await sent).wait(1, 20_000);
  if (!receipt) throw new Error("transaction without a receipt");
  return receipt;
}

/** Roles (contracts README "Roles"): the admin grants manager and approver roles. */
export async function grantReleaseRoles(
  registry: Contract,
  manager: string,
  approvers: string[],
): Promise<void> {
  const managerRole = (await registry.getFunction("RELEASE_MANAGER_ROLE")()) as string;
  const approverRole = (await registry.getFunction("RELEASE_APPROVER_ROLE")()) as string;
  await mined(registry.getFunction("grantRole")(managerRole, manager));
  for (const a of approvers) await mined(registry.getFunction("grantRole")(approverRole, a));
}

/**
 * Proposes `input` from a release manager; the id is the `ReleaseProposed` event's (contracts
 * README). A static call first makes a revert come back by its error's name.
 */
export async function propose(releases: Contract, input: ReleaseInput): Promise<bigint> {
  await releases.getFunction("propose").staticCall(input);
  const receipt = await mined(releases.getFunction("propose")(input));
  for (const log of receipt.logs) {
    const parsed = releases.interface.parseLog(log);
    if (parsed?.name === "ReleaseProposed") return BigInt(parsed.args[0] as bigint);
  }
  throw new Error("propose: no ReleaseProposed event");
}

export interface Approval {
  approvals: number;
  activated: boolean;
}

/** One approval (not by the proposer): the `ReleaseApproved` count, and whether it activated. */
export async function approve(releases: Contract, id: bigint, approver: ContractRunner): Promise<Approval> {
  const c = releases.connect(approver) as Contract;
  await c.getFunction("approve").staticCall(id); // a revert decoded by name before sending
  const logs: readonly Log[] = (await mined(c.getFunction("approve")(id))).logs;
  let approvals = -1;
  let activated = false;
  for (const log of logs) {
    const parsed = releases.interface.parseLog(log);
    if (parsed?.name === "ReleaseApproved") approvals = Number(parsed.args[2]);
    if (parsed?.name === "ReleaseActivated" && BigInt(parsed.args[0] as bigint) === id) activated = true;
  }
  return { approvals, activated };
}

/** Publishes and collects approvals until the release is Active (the README's M of N). */
export async function publishAndApprove(
  releases: Contract,
  input: ReleaseInput,
  approvers: ContractRunner[],
): Promise<{ id: bigint; steps: Approval[] }> {
  const id = await propose(releases, input);
  const steps: Approval[] = [];
  for (const a of approvers) {
    steps.push(await approve(releases, id, a));
    if (steps.at(-1)!.activated) break;
  }
  return { id, steps };
}

/**
 * A firmware image (hardware/PROTOCOL.md "Firmware image"): the 32-byte header, little-endian
 * (PROTOCOL.md: all integers), then the firmware. `security_counter` defaults to the release's
 * version number, as the document advises ("set security_counter to the release's on-chain
 * version when that is below 2^32").
 */
export function firmwareImage(version: string, firmware: Uint8Array, securityCounter?: number): Buffer {
  const [maj, min, pat] = version.split(".").map(Number) as [number, number, number];
  const h = Buffer.alloc(32);
  h.write("VGFW", 0, "latin1");
  h.writeUInt16LE(32, 4);
  h.writeUInt8(maj, 6);
  h.writeUInt8(min, 7);
  h.writeUInt16LE(pat, 8);
  h.writeUInt16LE(0, 10);
  h.writeUInt32LE(securityCounter ?? Number(packVersion(version)), 12);
  h.writeUInt32LE(32 + firmware.length, 16);
  return Buffer.concat([h, firmware]);
}

/**
 * A firmware release (updates README "Release layout"): target `vigil:firmware:<hardware target>`,
 * version from the header, `metrics` `{"securityCounter":N}` (the header's), no training data.
 */
export function buildFirmwareRelease(opts: {
  image: Buffer;
  hardwareTarget: string;
  dir: string;
  uris?: (path: string) => string[];
}): { input: ReleaseInput; path: string } {
  const img = opts.image;
  if (img.subarray(0, 4).toString("latin1") !== "VGFW") throw new Error("not a VGFW image");
  const version = `${img.readUInt8(6)}.${img.readUInt8(7)}.${img.readUInt16LE(8)}`;
  mkdirSync(opts.dir, { recursive: true });
  const path = join(opts.dir, `${opts.hardwareTarget}-${version}.vgfw`);
  writeFileSync(path, img);
  return {
    path,
    input: {
      kind: KIND.firmware,
      target: targetId("firmware", opts.hardwareTarget),
      version: packVersion(version),
      contentHash: hex32(sha256(img)),
      size: BigInt(img.length),
      trainingDataHash: hex32(new Uint8Array(32)),
      uris: opts.uris?.(path) ?? [pathToFileURL(path).href],
      metrics: JSON.stringify({ securityCounter: img.readUInt32LE(12) }),
    },
  };
}
