import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Rng } from "../../device-sim/src/rng.ts";
import { cobsDecodeInto, cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { crc32 } from "../../gateway/src/protocol/crc32.ts";
import { FrameError } from "../../gateway/src/protocol/errors.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  MAX_FRAME,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import { dataFrameArb, errorFrameArb, helloFrameArb } from "../helpers/frames.ts";
import { mutate, MUTATIONS } from "../helpers/mutate.ts";

interface Vectors {
  crcCheck: { input: string; crc32: number };
  valid: Array<{ name: string; frame: Record<string, unknown>; hex: string; wire: string }>;
  invalid: Array<{ name: string; hex: string; reason: string }>;
}
const vectors = JSON.parse(
  readFileSync(new URL("../../hardware/vectors/frames.json", import.meta.url), "utf8"),
) as Vectors;

function fromJson(f: Record<string, unknown>): Frame {
  return (f.type === FrameType.Data
    ? { ...f, values: Float32Array.from(f.values as number[]) }
    : f) as unknown as Frame;
}
function toPlain(f: Frame): unknown {
  return f.type === FrameType.Data ? { ...f, values: Array.from(f.values) } : f;
}

describe("known-answer vectors (shared with the C reference)", () => {
  it("CRC-32/ISO-HDLC check value", () => {
    expect(crc32(Buffer.from(vectors.crcCheck.input, "hex"))).toBe(0xcbf43926);
    expect(vectors.crcCheck.crc32).toBe(0xcbf43926);
  });
  for (const v of vectors.valid) {
    it(`behavior: ${v.name} encodes, frames and decodes byte for byte`, () => {
      const frame = fromJson(v.frame);
      const bytes = encodeFrame(frame);
      expect(bytes.toString("hex")).toBe(v.hex);
      expect(cobsEncode(bytes).toString("hex")).toBe(v.wire);
      expect(toPlain(decodeFrame(Buffer.from(v.hex, "hex")))).toEqual(v.frame);
    });
  }
  for (const v of vectors.invalid) {
    it(`error: ${v.name} is rejected as ${v.reason}`, () => {
      expect(() => decodeFrame(Buffer.from(v.hex, "hex"))).toThrowError(
        expect.objectContaining({ reason: v.reason }),
      );
    });
  }
});

describe("COBS", () => {
  it("property: round trip for any bytes, no zero inside the encoding", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (src) => {
        const enc = cobsEncode(src);
        expect(enc[enc.length - 1]).toBe(0);
        expect(enc.subarray(0, -1).includes(0)).toBe(false);
        const dst = Buffer.alloc(src.length + 1);
        const n = cobsDecodeInto(enc, 0, enc.length - 1, dst);
        expect(Buffer.from(dst.subarray(0, n))).toEqual(Buffer.from(src));
      }),
      { numRuns: 2000 },
    );
  });
  it("behavior: a run of 254 non-zero bytes uses a 0xFF code block", () => {
    const src = Buffer.alloc(254, 7);
    const enc = cobsEncode(src);
    expect(enc[0]).toBe(0xff);
    expect(enc.length).toBe(1 + 254 + 1);
    expect(cobsEncode(Buffer.alloc(255, 7)).length).toBe(1 + 254 + 1 + 1 + 1);
  });
  it("error: invalid code bytes and destinations that are too small", () => {
    expect(cobsDecodeInto(Buffer.from([5, 1, 2]), 0, 3, Buffer.alloc(10))).toBe(-1);
    expect(cobsDecodeInto(Buffer.from([3, 1, 0]), 0, 3, Buffer.alloc(10))).toBe(-1);
    expect(cobsDecodeInto(Buffer.from([4, 1, 2, 3]), 0, 4, Buffer.alloc(2))).toBe(-1);
  });
});

describe("frame codec", () => {
  it("property: DATA frames round trip", () => {
    fc.assert(
      fc.property(dataFrameArb, (f) => {
        const d = decodeFrame(encodeFrame(f));
        expect(toPlain(d)).toEqual(toPlain(f));
      }),
      { numRuns: 2000 },
    );
  });
  it("property: HELLO frames round trip", () => {
    fc.assert(
      fc.property(helloFrameArb, (f) => {
        expect(decodeFrame(encodeFrame(f))).toEqual(f);
      }),
      { numRuns: 1000 },
    );
  });
  it("args: the encoder refuses what the protocol cannot carry", () => {
    const data = { type: FrameType.Data, deviceId: 1, seq: 1, timestampUs: 0, flags: 0 } as const;
    expect(() => encodeFrame({ ...data, values: new Float32Array(0) })).toThrow(RangeError);
    expect(() => encodeFrame({ ...data, values: new Float32Array(33) })).toThrow(/1\.\.32/);
    expect(() => encodeFrame({ ...data, timestampUs: -1, values: new Float32Array(1) })).toThrow(/u64/);
    expect(() =>
      encodeFrame({
        type: FrameType.Hello,
        deviceId: 1,
        bootId: 0,
        firmware: { major: 1, minor: 0, patch: 0 },
        profile: "x",
        channels: [{ name: "Bad Name", unit: 0 }],
      }),
    ).toThrow(/channel name/);
  });
  it("error: an ERROR frame with invalid UTF-8 is BAD_PAYLOAD (accepted frames are canonical)", () => {
    const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ab" });
    b[10] = 0xc3; // a lone lead byte
    b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
    expect(() => decodeFrame(b)).toThrowError(expect.objectContaining({ reason: "BAD_PAYLOAD" }));
  });
  it("error: every oversized input is OVERSIZED, not a crash", () => {
    expect(() => decodeFrame(Buffer.alloc(MAX_FRAME + 1))).toThrowError(
      expect.objectContaining({ reason: "OVERSIZED" }),
    );
  });

  it("property: 10,000 mutated valid frames never crash the decoder; accepted ones re-encode identically", () => {
    const r = new Rng(2024);
    const tally: Record<string, number> = {};
    const bases = fc
      .sample(fc.oneof(dataFrameArb, helloFrameArb, errorFrameArb), { numRuns: 200, seed: 7 })
      .map((f) => encodeFrame(f));
    for (let i = 0; i < 10_000; i++) {
      const base = bases[i % bases.length]!;
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      const m = mutate(base, kind, r);
      try {
        const f = decodeFrame(m);
        expect(encodeFrame(f).equals(m)).toBe(true);
        tally.accepted = (tally.accepted ?? 0) + 1;
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
        const reason = (e as FrameError).reason;
        tally[reason] = (tally[reason] ?? 0) + 1;
      }
    }
    // Unsealed mutations must be caught by length or CRC checks; resealed ones reach payload checks.
    expect(tally.BAD_CRC).toBeGreaterThan(1000);
    expect(tally.NON_FINITE).toBeGreaterThan(100);
    expect(tally.TRUNCATED).toBeGreaterThan(100);
  });
});
