/**
 * How Vigil lays out a release on chain (VigilReleases.ReleaseInput), shared by `vigil release`
 * and the update agent:
 * - `target`: a 32-byte id; a name `T` maps to keccak256("vigil:<kind>:T"). A model release's
 *   target names a device profile it serves (e.g. "cmapss-fd001"); a firmware release's names the
 *   hardware the image is for (the sensor's HELLO firmware target, e.g. "sim-mcu").
 * - `version`: for models `major·10^6 + minor·10^3 + patch` of the manifest's semver; for firmware
 *   the same of the image header's version (each part at most 999, or two versions would share a
 *   number). Always within one MAX_VERSION_STEP of the last.
 * - `metrics` (≤ 512 bytes of compact JSON): for a model, `{"manifest":{"file","sha256","cid"},
 *   "precision","rmse"}` — the manifest travels beside the model (same folder for file:// and
 *   https://, its own CID for ipfs://) and is pinned by its sha256, so a manifest of another
 *   release cannot be paired with this model.
 */
import { createHash } from "node:crypto";
import { id as keccakId } from "ethers";
import type { ReleaseKind } from "../chain/client.ts";
import type { Hex } from "../core/hex.ts";
import type { ModelManifest } from "../infer/features/manifest.ts";
import type { FirmwareVersion } from "../protocol/frame.ts";
import { versionText } from "../protocol/firmware-image.ts";
import { UpdateError } from "./errors.ts";

/** The on-chain target id of a target name (or the id itself when given as 32 bytes of hex). */
export function targetId(kind: ReleaseKind, name: string): Hex {
  if (/^0x[0-9a-fA-F]{64}$/.test(name)) return name.toLowerCase() as Hex;
  return keccakId(`vigil:${kind}:${name}`) as Hex;
}

/** `major·10^6 + minor·10^3 + patch` of "MAJOR.MINOR.PATCH" (each part < 1000). */
export function semverToVersion(v: string): bigint {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[-+].*)?$/.exec(v);
  if (!m)
    throw new UpdateError(
      "MANIFEST_INVALID",
      `version "${v}" is not MAJOR.MINOR.PATCH with parts below 1000`,
    );
  return BigInt(m[1]!) * 1_000_000n + BigInt(m[2]!) * 1_000n + BigInt(m[3]!);
}

/** The largest major, minor or patch a release version holds (`major·10^6 + minor·10^3 + patch`). */
export const MAX_FIRMWARE_VERSION_PART = 999;

/**
 * `major·10^6 + minor·10^3 + patch`, the release version of a firmware image.
 * @throws UpdateError `MANIFEST_INVALID` when a part is above {@link MAX_FIRMWARE_VERSION_PART}:
 *   its number would be another version's (1.0.1000 packs to 1.1.0's 1 001 000).
 */
export function firmwareVersionNumber(v: FirmwareVersion): bigint {
  for (const part of ["major", "minor", "patch"] as const)
    if (v[part] > MAX_FIRMWARE_VERSION_PART)
      throw new UpdateError(
        "MANIFEST_INVALID",
        `firmware version ${versionText(v)} has a ${part} above ${MAX_FIRMWARE_VERSION_PART}, which a release version (major·10^6 + minor·10^3 + patch) cannot hold`,
      );
  return BigInt(v.major) * 1_000_000n + BigInt(v.minor) * 1_000n + BigInt(v.patch);
}

/**
 * The firmware version a release version names (the inverse of {@link firmwareVersionNumber}), or
 * undefined when it names none a device can run (a major or minor above 255, the wire's byte).
 */
export function firmwareVersionOf(n: bigint): FirmwareVersion | undefined {
  const major = n / 1_000_000n;
  const minor = (n / 1_000n) % 1_000n;
  if (n < 0n || major > 0xffn || minor > 0xffn) return undefined;
  return { major: Number(major), minor: Number(minor), patch: Number(n % 1_000n) };
}

/** What a model release's `metrics` field carries. */
export interface ModelReleaseMeta {
  manifest: { file: string; sha256: string; cid: string };
  precision?: string;
  rmse?: number;
}

export const MAX_METRICS_BYTES = 512;

/** The name of a model release's manifest file (`metrics.manifest.file`): a plain name beside the model. */
export const MANIFEST_FILE = /^[A-Za-z0-9._-]+\.manifest\.json$/;
/**
 * A CIDv1 as `vigil release publish` (and `ipfs add --cid-version=1`) prints it: multibase base32,
 * prefix `b` (the multibase spec), lower case. A pinned `cid` of another shape could never be
 * fetched over ipfs://: refused as MANIFEST_INVALID (remembered), not retried as FETCH_FAILED.
 */
export const MANIFEST_CID = /^b[a-z2-7]{20,200}$/;

export function encodeModelMeta(meta: ModelReleaseMeta): string {
  const s = JSON.stringify(meta);
  if (Buffer.byteLength(s) > MAX_METRICS_BYTES)
    throw new UpdateError("MANIFEST_INVALID", `release metrics are ${Buffer.byteLength(s)} bytes, over 512`);
  return s;
}

/** Parses a model release's metrics; throws MANIFEST_INVALID when the manifest is not pinned. */
export function parseModelMeta(metrics: string): ModelReleaseMeta {
  let j: unknown;
  try {
    j = JSON.parse(metrics);
  } catch {
    throw new UpdateError("MANIFEST_INVALID", "the release's metrics are not JSON, so no manifest is pinned");
  }
  const m = (j as { manifest?: { file?: unknown; sha256?: unknown; cid?: unknown } }).manifest;
  if (
    !m ||
    typeof m.file !== "string" ||
    !MANIFEST_FILE.test(m.file) ||
    typeof m.sha256 !== "string" ||
    !/^[0-9a-f]{64}$/.test(m.sha256) ||
    typeof m.cid !== "string" ||
    !MANIFEST_CID.test(m.cid)
  )
    throw new UpdateError(
      "MANIFEST_INVALID",
      "the release's metrics do not pin a manifest (file, sha256, cid)",
    );
  return j as ModelReleaseMeta;
}

/**
 * The training-data hash of a model release: sha256 over the manifest's `training.data` entries as
 * "file sha256\n" lines in manifest order (zero when the manifest lists none).
 */
export function trainingDataHash(m: ModelManifest): Hex {
  if (m.training.data.length === 0) return `0x${"0".repeat(64)}`;
  const h = createHash("sha256");
  for (const d of m.training.data) h.update(`${d.file} ${d.sha256}\n`);
  return `0x${h.digest("hex")}`;
}
