import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Rng } from "../../device-sim/src/rng.ts";
import { cobsDecodeInto, cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { crc32 } from "../../gateway/src/protocol/crc32.ts";
import { FrameEncodeError, FrameError } from "../../gateway/src/protocol/errors.ts";
import { decodeJsonFrame, toJsonFrame } from "../../gateway/src/protocol/json.ts";
import {
  decodeFrame,
  deviceIdHex,
  encodeFrame,
  FrameType,
  MAX_FRAME,
  NackReason,
  RETRYABLE_NACKS,
  WITHHOLD_PUBACK_NACKS,
  type Frame,
  type HelloFrame,
} from "../../gateway/src/protocol/frame.ts";
import {
  anyFrameArb,
  dataFrameArb,
  errorFrameArb,
  frameFromJson,
  frameToJson,
  helloFrameArb,
} from "../helpers/frames.ts";
import { mutate, MUTATIONS } from "../helpers/mutate.ts";

interface Vectors {
  crcCheck: { input: string; crc32: number };
  valid: Array<{ name: string; frame: Record<string, unknown>; hex: string; wire: string }>;
  invalid: Array<{ name: string; hex: string; reason: string }>;
}
const vectors = JSON.parse(
  readFileSync(new URL("../../hardware/vectors/frames.json", import.meta.url), "utf8"),
) as Vectors;

const fromJson = frameFromJson;
const toPlain = (f: Frame): unknown => frameToJson(f);

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
  it("property: every v1.1 frame type round trips and re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(anyFrameArb, (f) => {
        const raw = encodeFrame(f);
        const d = decodeFrame(raw);
        expect(toPlain(d)).toEqual(toPlain(f));
        expect(encodeFrame(d).equals(raw)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
  it("args: the encoder refuses what the protocol cannot carry", () => {
    const data = { type: FrameType.Data, deviceId: 1, seq: 1, timestampUs: 0, flags: 0 } as const;
    expect(() => encodeFrame({ ...data, values: new Float32Array(0) })).toThrow(FrameEncodeError);
    expect(() => encodeFrame({ ...data, values: new Float32Array(33) })).toThrow(/1\.\.32/);
    expect(() => encodeFrame({ ...data, timestampUs: -1, values: new Float32Array(1) })).toThrow(
      /timestampUs/,
    );
    expect(() =>
      encodeFrame({
        type: FrameType.Hello,
        deviceId: 1,
        bootId: 0,
        firmware: { major: 1, minor: 0, patch: 0 },
        profile: "x",
        channels: [{ name: "Bad Name", unit: 0 }],
      }),
    ).toThrow(/channels\[0\]\.name/);
  });
  describe("error: the encoder never truncates; FrameEncodeError names the field", () => {
    const one = new Float32Array(1);
    const data = {
      type: FrameType.Data,
      deviceId: 1,
      seq: 1,
      timestampUs: 0,
      flags: 0,
      values: one,
    } as const;
    const hello: HelloFrame = {
      type: FrameType.Hello,
      deviceId: 1,
      bootId: 0,
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: "x",
      channels: [{ name: "a", unit: 0 }],
    };
    const offer = {
      type: FrameType.FwOffer,
      deviceId: 1,
      releaseId: 1,
      firmware: { major: 1, minor: 0, patch: 0 },
      securityCounter: 0,
      imageSize: 64,
      sha256: new Uint8Array(32),
    } as const;
    const status = {
      type: FrameType.FwStatus,
      deviceId: 1,
      state: 0,
      result: 0,
      reason: 0,
      window: 1,
      releaseId: 0,
      nextOffset: 0,
      slotSize: 0,
      securityCounter: 0,
      firmware: { major: 1, minor: 0, patch: 0 },
      maxChunk: 224,
    } as const;
    const cases: Array<[string, Frame, string]> = [
      ["deviceId 2^32+5 (used to encode as 5)", { ...data, deviceId: 2 ** 32 + 5 }, "deviceId"],
      ["negative deviceId", { ...data, deviceId: -1 }, "deviceId"],
      ["fractional seq", { ...data, seq: 1.5 }, "seq"],
      ["seq 2^32", { ...data, seq: 2 ** 32 }, "seq"],
      ["flags 256", { ...data, flags: 256 }, "flags"],
      ["bootId -1", { ...hello, bootId: -1 }, "bootId"],
      ["firmware.major 256", { ...hello, firmware: { major: 256, minor: 0, patch: 0 } }, "firmware.major"],
      ["firmware.minor -1", { ...hello, firmware: { major: 1, minor: -1, patch: 0 } }, "firmware.minor"],
      [
        "firmware.patch 65536",
        { ...hello, firmware: { major: 1, minor: 0, patch: 65536 } },
        "firmware.patch",
      ],
      ["unit 13", { ...hello, channels: [{ name: "a", unit: 13 }] }, "channels[0].unit"],
      ["profile 32 chars", { ...hello, profile: "p".repeat(32) }, "profile"],
      ["ACK count 0", { type: FrameType.Ack, deviceId: 1, firstSeq: 0, count: 0, gatewayTimeUs: 0 }, "count"],
      [
        "ACK count 65536",
        { type: FrameType.Ack, deviceId: 1, firstSeq: 0, count: 65536, gatewayTimeUs: 0 },
        "count",
      ],
      ["NACK reason 256", { type: FrameType.Nack, deviceId: 1, seq: 0, reason: 256 }, "reason"],
      ["BUSY without retryAfterMs", { type: FrameType.Nack, deviceId: 1, seq: 0, reason: 8 }, "retryAfterMs"],
      [
        "retryAfterMs with another reason",
        { type: FrameType.Nack, deviceId: 1, seq: 0, reason: 6, retryAfterMs: 10 },
        "retryAfterMs",
      ],
      [
        "retryAfterMs 0",
        { type: FrameType.Nack, deviceId: 1, seq: 0, reason: 8, retryAfterMs: 0 },
        "retryAfterMs",
      ],
      [
        "retryAfterMs 65536",
        { type: FrameType.Nack, deviceId: 1, seq: 0, reason: 8, retryAfterMs: 65536 },
        "retryAfterMs",
      ],
      ["ERROR code 256", { type: FrameType.Error, deviceId: 1, code: 256, message: "" }, "code"],
      [
        "ERROR message 201 bytes",
        { type: FrameType.Error, deviceId: 1, code: 1, message: "é".repeat(101) },
        "message",
      ],
      ["offer releaseId 0", { ...offer, releaseId: 0 }, "releaseId"],
      ["offer sha256 of 31 bytes", { ...offer, sha256: new Uint8Array(31) }, "sha256"],
      ["offer imageSize 0", { ...offer, imageSize: 0 }, "imageSize"],
      ["offer securityCounter 2^32", { ...offer, securityCounter: 2 ** 32 }, "securityCounter"],
      [
        "chunk of 225 bytes",
        { type: FrameType.FwChunk, deviceId: 1, releaseId: 1, offset: 0, data: new Uint8Array(225) },
        "data",
      ],
      [
        "empty chunk",
        { type: FrameType.FwChunk, deviceId: 1, releaseId: 1, offset: 0, data: new Uint8Array(0) },
        "data",
      ],
      [
        "chunk past 4 GiB",
        { type: FrameType.FwChunk, deviceId: 1, releaseId: 1, offset: 2 ** 32 - 4, data: new Uint8Array(8) },
        "offset",
      ],
      ["status window 17", { ...status, window: 17 }, "window"],
      ["status maxChunk 15", { ...status, maxChunk: 15 }, "maxChunk"],
      ["status state 4", { ...status, state: 4 as 0 }, "state"],
      [
        "chunk ack status 4",
        { type: FrameType.FwChunkAck, deviceId: 1, releaseId: 1, nextOffset: 0, status: 4 as 0 },
        "status",
      ],
      ["abort reason -1", { type: FrameType.FwAbort, deviceId: 1, releaseId: 1, reason: -1 }, "reason"],
      ["unknown type", { type: 9 } as unknown as Frame, "type"],
    ];
    for (const [name, frame, field] of cases) {
      it(`error: ${name}`, () => {
        let err: unknown;
        try {
          encodeFrame(frame);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(FrameEncodeError);
        expect((err as FrameEncodeError).field).toBe(field);
        expect((err as FrameEncodeError).code).toBe("FRAME_FIELD_RANGE");
      });
    }
    it("error: deviceIdHex refuses what is not a u32", () => {
      expect(deviceIdHex(0x2a)).toBe("0000002a");
      expect(() => deviceIdHex(2 ** 32 + 5)).toThrow(FrameEncodeError);
    });
  });

  it("behavior: one definition of the retryable NACK sets", () => {
    expect([...RETRYABLE_NACKS].sort()).toEqual(
      [
        NackReason.SCHEMA_MISMATCH,
        NackReason.STORE_UNAVAILABLE,
        NackReason.RATE_LIMITED,
        NackReason.BUSY,
      ].sort(),
    );
    expect([...WITHHOLD_PUBACK_NACKS].sort()).toEqual(
      [NackReason.STORE_UNAVAILABLE, NackReason.RATE_LIMITED, NackReason.BUSY].sort(),
    );
    // Every reason whose PUBACK is withheld is one the device keeps and resends.
    for (const r of WITHHOLD_PUBACK_NACKS) expect(RETRYABLE_NACKS.has(r)).toBe(true);
  });

  it("error: an ERROR frame with invalid UTF-8 is BAD_PAYLOAD (accepted frames are canonical)", () => {
    const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ab" });
    b[10] = 0xc3; // a lone lead byte
    b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
    expect(() => decodeFrame(b)).toThrowError(expect.objectContaining({ reason: "BAD_PAYLOAD" }));
  });
  it("behavior: an ERROR message that starts with a byte-order mark keeps it: the frame re-encodes to its own bytes", () => {
    const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "\uFEFFa" });
    expect([...b.subarray(10, 14)]).toEqual([0xef, 0xbb, 0xbf, 0x61]);
    const f = decodeFrame(b);
    expect(f).toMatchObject({ type: FrameType.Error, message: "\uFEFFa" });
    expect(Buffer.compare(encodeFrame(f), b)).toBe(0);
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
      .sample(fc.oneof(dataFrameArb, helloFrameArb, errorFrameArb, anyFrameArb), { numRuns: 300, seed: 7 })
      .map((f) => encodeFrame(f));
    for (let i = 0; i < 10_000; i++) {
      const base = bases[i % bases.length]!;
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      const m = mutate(base, kind, r);
      try {
        const f = decodeFrame(m);
        // A NaN's payload bits are not kept by a JS number: such a frame re-encodes with the
        // canonical quiet NaN, so compare it by value instead (its raw bytes are what is stored).
        if (f.type === FrameType.Data && f.nonFinite !== undefined) {
          expect(toPlain(decodeFrame(encodeFrame(f)))).toEqual(toPlain(f));
          tally.nonFinite = (tally.nonFinite ?? 0) + 1;
        } else expect(encodeFrame(f).equals(m)).toBe(true);
        tally.accepted = (tally.accepted ?? 0) + 1;
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
        const reason = (e as FrameError).reason;
        tally[reason] = (tally[reason] ?? 0) + 1;
      }
    }
    // Unsealed mutations must be caught by length or CRC checks; resealed ones reach payload checks.
    expect(tally.BAD_CRC).toBeGreaterThan(1000);
    expect(tally.nonFinite).toBeGreaterThan(100);
    expect(tally).not.toHaveProperty("NON_FINITE");
    expect(tally.TRUNCATED).toBeGreaterThan(100);
  });
});

describe("JSON form", () => {
  const hello = (fw: string) =>
    Buffer.from(
      JSON.stringify({
        v: 1,
        type: "hello",
        device: "0000002a",
        boot: 1,
        fw,
        profile: "rotating-v1",
        channels: [{ name: "vib_rms", unit: 1 }],
      }),
    );
  it("behavior: the firmware version's patch is a u16 (65535 accepted)", () => {
    const { frame } = decodeJsonFrame(hello("1.2.65535"));
    expect(frame).toMatchObject({ type: FrameType.Hello, firmware: { major: 1, minor: 2, patch: 65535 } });
  });
  it("error: a patch above 65535 is BAD_JSON (it used to be truncated to 16 bits)", () => {
    for (const fw of ["1.2.65536", "1.2.99999", "256.0.0"])
      expect(() => decodeJsonFrame(hello(fw)), fw).toThrowError(
        expect.objectContaining({ reason: "BAD_JSON" }),
      );
  });
});

describe("JSON form: missing values (revision 1.2)", () => {
  it("behavior: null is a missing value: a NaN in the binary frame, marked; NaN/±Inf print as null", () => {
    const doc = { v: 1, type: "data", device: "0000002a", seq: 4, values: [1.5, null, 2] };
    const { frame, raw } = decodeJsonFrame(Buffer.from(JSON.stringify(doc)));
    expect(frame.type === FrameType.Data && frame.nonFinite).toBe(0b010);
    expect(frame.type === FrameType.Data && Number.isNaN(frame.values[1])).toBe(true);
    expect(raw.readUInt32LE(4 + 18 + 4)).toBe(0x7fc00000); // the canonical quiet NaN
    expect(JSON.parse(toJsonFrame(frame)).values).toEqual([1.5, null, 2]);
  });
  it("error: a value that is neither a number nor null is BAD_JSON", () => {
    const doc = { v: 1, type: "data", device: "0000002a", seq: 4, values: [1, "NaN"] };
    expect(() => decodeJsonFrame(Buffer.from(JSON.stringify(doc)))).toThrowError(
      expect.objectContaining({ reason: "BAD_JSON" }),
    );
  });
});
