/**
 * The Vigil firmware image (hardware/PROTOCOL.md, "Firmware image"): a 32-byte header —
 * magic "VGFW", header size, version, flags, security counter, image size, reserved — then the
 * firmware. The C bootloader parses the same header (vigil_image_parse in vigil_fwu.c); the
 * gateway's update agent and the device simulator share this one.
 */
import { createHash } from "node:crypto";
import { FirmwareImageError } from "./errors.ts";
import type { FirmwareVersion } from "./frame.ts";

export const IMAGE_MAGIC = Buffer.from("VGFW", "latin1");
export const IMAGE_HEADER_BYTES = 32;

export interface FirmwareImageInfo {
  version: FirmwareVersion;
  securityCounter: number;
  /** Header + firmware, bytes. */
  imageSize: number;
  /** SHA-256 of the whole image. */
  sha256: Uint8Array;
}

/** Parses and checks an image; throws {@link FirmwareImageError} naming what is wrong. */
export function parseFirmwareImage(image: Uint8Array): FirmwareImageInfo {
  const bad = (why: string) => new FirmwareImageError(`firmware image: ${why}`);
  if (image.length < IMAGE_HEADER_BYTES)
    throw bad(`${image.length} bytes is shorter than its 32-byte header`);
  const b = Buffer.from(image.buffer, image.byteOffset, image.length);
  if (!b.subarray(0, 4).equals(IMAGE_MAGIC)) throw bad('magic is not "VGFW"');
  if (b.readUInt16LE(4) !== IMAGE_HEADER_BYTES) throw bad(`header size ${b.readUInt16LE(4)} is not 32`);
  if (b.readUInt16LE(10) !== 0) throw bad("flags are not 0");
  if (b.subarray(20, 32).some((x) => x !== 0)) throw bad("reserved header bytes are not 0");
  const imageSize = b.readUInt32LE(16);
  if (imageSize !== image.length) throw bad(`header says ${imageSize} bytes, the file has ${image.length}`);
  return {
    version: { major: b[6]!, minor: b[7]!, patch: b.readUInt16LE(8) },
    securityCounter: b.readUInt32LE(12),
    imageSize,
    sha256: Uint8Array.from(createHash("sha256").update(image).digest()),
  };
}

/** Builds an image from a firmware body (tests, the simulator, release tooling). */
export function buildFirmwareImage(opts: {
  version: FirmwareVersion;
  securityCounter: number;
  body: Uint8Array;
}): Buffer {
  const { version: v, securityCounter, body } = opts;
  const check = (x: number, max: number, field: string) => {
    if (!Number.isInteger(x) || x < 0 || x > max)
      throw new FirmwareImageError(`firmware image: ${field} must be an integer in 0..${max}, got ${x}`);
  };
  check(v.major, 0xff, "version.major");
  check(v.minor, 0xff, "version.minor");
  check(v.patch, 0xffff, "version.patch");
  check(securityCounter, 0xffff_ffff, "securityCounter");
  check(IMAGE_HEADER_BYTES + body.length, 0xffff_ffff, "image size");
  const out = Buffer.alloc(IMAGE_HEADER_BYTES + body.length);
  IMAGE_MAGIC.copy(out, 0);
  out.writeUInt16LE(IMAGE_HEADER_BYTES, 4);
  out[6] = v.major;
  out[7] = v.minor;
  out.writeUInt16LE(v.patch, 8);
  out.writeUInt32LE(securityCounter, 12);
  out.writeUInt32LE(out.length, 16);
  out.set(body, IMAGE_HEADER_BYTES);
  return out;
}

/** (major, minor, patch) comparison: negative, 0 or positive. */
export function compareVersions(a: FirmwareVersion, b: FirmwareVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function versionText(v: FirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}
