/**
 * Writes hardware/vectors/frames.json: the known-answer vectors shared by the TypeScript
 * codec and the C reference. Run once when the protocol changes:
 *   npx tsx test/vectors/generate.ts
 * The test suite checks both implementations against the committed file, so a codec change
 * that alters bytes fails until the vectors (and the firmware) are deliberately updated.
 */
import { writeFileSync } from "node:fs";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { crc32 } from "../../gateway/src/protocol/crc32.ts";
import { encodeFrame, FrameType, NackReason, Unit, type Frame } from "../../gateway/src/protocol/frame.ts";

interface ValidVector {
  name: string;
  frame: Record<string, unknown>;
  hex: string;
  wire: string;
}
interface InvalidVector {
  name: string;
  hex: string;
  reason: string;
}

function toJson(f: Frame): Record<string, unknown> {
  if (f.type === FrameType.Data) return { ...f, values: Array.from(f.values) };
  return { ...f };
}

const valid: Array<[string, Frame]> = [
  [
    "data-1ch",
    {
      type: FrameType.Data,
      deviceId: 0x2a,
      seq: 1,
      timestampUs: 1_732_476_000_000_000,
      flags: 0,
      values: new Float32Array([1.5]),
    },
  ],
  [
    "data-6ch-rotating",
    {
      type: FrameType.Data,
      deviceId: 0x0102_0304,
      seq: 4_294_967_295,
      timestampUs: 1_764_000_000_123_456,
      flags: 1,
      values: new Float32Array([0.125, 0.5, 3.25, 41.5, 12.75, 1480]),
    },
  ],
  [
    "data-24ch-cmapss",
    {
      type: FrameType.Data,
      deviceId: 0x00c0_ffee,
      seq: 192,
      timestampUs: 0,
      flags: 0,
      values: new Float32Array([
        -0.0007, -0.0004, 100, 518.67, 641.82, 1589.7, 1400.6, 14.62, 21.61, 554.36, 2388.06, 9046.19, 1.3,
        47.47, 521.66, 2388.02, 8138.62, 8.4195, 0.03, 392, 2388, 100, 39.06, 23.419,
      ]),
    },
  ],
  [
    "data-zero-bytes",
    { type: FrameType.Data, deviceId: 0, seq: 0, timestampUs: 0, flags: 0, values: new Float32Array([0, 0]) },
  ],
  [
    "data-32ch-max",
    {
      type: FrameType.Data,
      deviceId: 0xffff_ffff,
      seq: 65536,
      timestampUs: 2 ** 53 - 1,
      flags: 0,
      values: new Float32Array(Array.from({ length: 32 }, (_, i) => (i - 16) * 0.25)),
    },
  ],
  [
    "hello-rotating",
    {
      type: FrameType.Hello,
      deviceId: 0x0102_0304,
      bootId: 7,
      firmware: { major: 1, minor: 2, patch: 300 },
      profile: "rotating-v1",
      channels: [
        { name: "vib_rms", unit: Unit.g },
        { name: "vib_peak", unit: Unit.g },
        { name: "vib_kurt", unit: Unit.none },
        { name: "bearing_temp", unit: Unit.degC },
        { name: "current", unit: Unit.A },
        { name: "speed", unit: Unit.rpm },
      ],
    },
  ],
  [
    "ack",
    {
      type: FrameType.Ack,
      deviceId: 0x2a,
      firstSeq: 4_294_967_290,
      count: 12,
      gatewayTimeUs: 1_764_000_000_000_001,
    },
  ],
  ["nack", { type: FrameType.Nack, deviceId: 0x2a, seq: 99, reason: NackReason.STORE_UNAVAILABLE }],
  ["error", { type: FrameType.Error, deviceId: 0x2a, code: 1, message: "bearing thermocouple open" }],
  ["error-empty", { type: FrameType.Error, deviceId: 0, code: 3, message: "" }],
];

const vectors: ValidVector[] = valid.map(([name, frame]) => {
  const bytes = encodeFrame(frame);
  return { name, frame: toJson(frame), hex: bytes.toString("hex"), wire: cobsEncode(bytes).toString("hex") };
});

function reseal(b: Buffer): Buffer {
  const crcAt = b.length - 4;
  b.writeUInt32LE(crc32(b.subarray(0, crcAt)), crcAt);
  return b;
}
const base = encodeFrame(valid[1]![1]);
const invalid: InvalidVector[] = [];
const add = (name: string, b: Buffer, reason: string) =>
  invalid.push({ name, hex: b.toString("hex"), reason });
{
  const b = Buffer.from(base);
  b[10] = b[10]! ^ 0x01;
  add("bit-flip", b, "BAD_CRC");
}
add("truncated", base.subarray(0, base.length - 3), "TRUNCATED");
add("too-short", base.subarray(0, 5), "TRUNCATED");
add("trailing-byte", Buffer.concat([base, Buffer.from([0x55])]), "LENGTH_MISMATCH");
{
  const b = Buffer.from(base);
  b[0] = 2;
  add("version-2", reseal(b), "BAD_VERSION");
}
{
  const b = Buffer.from(base);
  b[1] = 0x09;
  add("type-9", reseal(b), "BAD_TYPE");
}
{
  const b = Buffer.from(base);
  b.writeFloatLE(NaN, 4 + 18 + 8);
  add("nan-value", reseal(b), "NON_FINITE");
}
{
  const b = Buffer.from(base);
  b.writeFloatLE(-Infinity, 4 + 18);
  add("inf-value", reseal(b), "NON_FINITE");
}
{
  const b = Buffer.from(base);
  b[4 + 16] = 5; // claims 5 channels but carries 6
  add("channel-count-mismatch", reseal(b), "BAD_PAYLOAD");
}
{
  const b = Buffer.alloc(4 + 241 + 4);
  b[0] = 1;
  b[1] = FrameType.Data;
  b.writeUInt16LE(241, 2);
  add("oversized-length", reseal(b), "OVERSIZED");
}

{
  const b = Buffer.from(base);
  b.writeUInt32LE(0, 4 + 8);
  b.writeUInt32LE(0x20_0000, 4 + 12); // timestamp = 2^53 µs
  add("timestamp-2^53", reseal(b), "BAD_PAYLOAD");
}
{
  const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ok?" });
  b[4 + 6 + 2] = 0xc0; // overlong lead byte: ill-formed UTF-8
  add("error-bad-utf8", reseal(b), "BAD_PAYLOAD");
}
{
  const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ab\u00e9" });
  add("error-truncated-utf8", reseal(cutUtf8(b)), "BAD_PAYLOAD");
}

/** Drops the last byte of a 2-byte UTF-8 character while keeping the frame consistent. */
function cutUtf8(b: Buffer): Buffer {
  const m = b[4 + 5]! - 1;
  const out = Buffer.alloc(b.length - 1);
  b.copy(out, 0, 0, 4 + 6 + m);
  out[4 + 5] = m;
  out.writeUInt16LE(6 + m, 2);
  return out;
}

const crcCheck = { input: Buffer.from("123456789").toString("hex"), crc32: crc32(Buffer.from("123456789")) };
const out = {
  description:
    "Vigil frame protocol v1 known-answer vectors (hardware/PROTOCOL.md). hex = unencoded frame; wire = COBS + 0x00.",
  crcCheck,
  valid: vectors,
  invalid,
};
writeFileSync(
  new URL("../../hardware/vectors/frames.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log(`wrote ${vectors.length} valid and ${invalid.length} invalid vectors`);
