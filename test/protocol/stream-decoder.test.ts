import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import type { FrameError } from "../../gateway/src/protocol/errors.ts";
import { encodeFrame, MAX_ENCODED } from "../../gateway/src/protocol/frame.ts";
import { StreamDecoder, type DecodedFrame } from "../../gateway/src/protocol/stream-decoder.ts";
import { FrameDecoderStream } from "../../gateway/src/ingest/serial/frame-decoder-stream.ts";
import { dataFrameArb } from "../helpers/frames.ts";

function collect(chunks: Uint8Array[], d = new StreamDecoder()) {
  const frames: DecodedFrame[] = [];
  const rejects: string[] = [];
  const sink = {
    frame: (f: DecodedFrame) => frames.push(f),
    reject: (e: FrameError) => rejects.push(e.reason),
  };
  for (const c of chunks) d.push(c, sink);
  return { frames, rejects, d };
}

const frameBytes = (seq: number) =>
  encodeFrame({
    type: 2,
    deviceId: 7,
    seq,
    timestampUs: 1_764_000_000_000_000 + seq,
    flags: 0,
    values: new Float32Array([seq, 0, -1]),
  });

describe("StreamDecoder", () => {
  it("behavior: frames split at every byte boundary are reassembled", () => {
    const wire = Buffer.concat([cobsEncode(frameBytes(1)), cobsEncode(frameBytes(2))]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const { frames, rejects } = collect([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(rejects).toEqual([]);
      expect(frames.map((f) => f.raw.toString("hex"))).toEqual([
        frameBytes(1).toString("hex"),
        frameBytes(2).toString("hex"),
      ]);
    }
  });

  it("behavior: one byte at a time", () => {
    const wire = Buffer.concat([1, 2, 3].map((s) => cobsEncode(frameBytes(s))));
    const { frames } = collect([...wire].map((b) => Uint8Array.of(b)));
    expect(frames).toHaveLength(3);
  });

  it("behavior: resynchronises after garbage; the frame after the garbage is not lost", () => {
    const garbage = Buffer.from([0x13, 0x37, 0xff, 0x01, 0x02]);
    const wire = Buffer.concat([
      cobsEncode(frameBytes(1)),
      garbage,
      Buffer.from([0]),
      cobsEncode(frameBytes(2)),
    ]);
    const { frames, rejects } = collect([wire]);
    expect(frames.map((f) => f.frame.type === 2 && f.frame.seq)).toEqual([1, 2]);
    expect(rejects).toHaveLength(1);
  });

  it("behavior: garbage glued to the front of a frame costs that frame only, and empty segments are ignored", () => {
    const wire = Buffer.concat([
      Buffer.from([0, 0, 0x55, 0x66]),
      cobsEncode(frameBytes(1)),
      Buffer.from([0, 0]),
      cobsEncode(frameBytes(2)),
    ]);
    const { frames, rejects } = collect([wire]);
    expect(frames.map((f) => f.frame.type === 2 && f.frame.seq)).toEqual([2]);
    expect(rejects).toHaveLength(1);
  });

  it("error: an oversized run is reported once, discarded, and memory stays bounded", () => {
    const d = new StreamDecoder();
    const noise = Buffer.alloc(10_000, 0x41);
    const { frames, rejects } = collect(
      [noise.subarray(0, 3000), noise.subarray(3000), Buffer.from([0]), cobsEncode(frameBytes(9))],
      d,
    );
    expect(rejects).toEqual(["OVERSIZED"]);
    expect(frames).toHaveLength(1);
    expect(d.bytesDiscarded).toBeGreaterThanOrEqual(10_000);
    expect(d.buffered).toBe(0);
  });

  it("error: a stream that ends inside a frame is TRUNCATED at flush", () => {
    const d = new StreamDecoder();
    const rejects: string[] = [];
    const sink = { frame: () => undefined, reject: (e: FrameError) => rejects.push(e.reason) };
    d.push(cobsEncode(frameBytes(1)).subarray(0, 10), sink);
    d.flush(sink);
    expect(rejects).toEqual(["TRUNCATED"]);
  });

  it("property: never buffers more than one maximum encoded frame, whatever arrives", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 30 }), (chunks) => {
        const d = new StreamDecoder();
        const sink = { frame: () => undefined, reject: () => undefined };
        for (const c of chunks) {
          d.push(c, sink);
          expect(d.buffered).toBeLessThanOrEqual(MAX_ENCODED);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("property: valid frames interleaved with random garbage are all recovered", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(dataFrameArb, fc.uint8Array({ maxLength: 40 })), { minLength: 1, maxLength: 20 }),
        fc.nat(50),
        (items, chunk) => {
          // Garbage is followed by a delimiter, as a sender that flushes before a frame does.
          const wire = Buffer.concat(
            items.flatMap(([f, g]) => [Buffer.from(g), Buffer.from([0]), cobsEncode(encodeFrame(f))]),
          );
          const size = chunk + 1;
          const chunks: Uint8Array[] = [];
          for (let i = 0; i < wire.length; i += size) chunks.push(wire.subarray(i, i + size));
          const { frames } = collect(chunks);
          const want = items.map(([f]) => encodeFrame(f).toString("hex"));
          const got = frames.map((f) => f.raw.toString("hex")).filter((h) => want.includes(h));
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("FrameDecoderStream (Transform)", () => {
  it("behavior: pushes decoded frames and emits rejects without ending the stream", async () => {
    const s = new FrameDecoderStream();
    const frames: DecodedFrame[] = [];
    const rejects: string[] = [];
    s.on("data", (f: DecodedFrame) => frames.push(f));
    s.on("reject", (e: FrameError) => rejects.push(e.reason));
    const bad = Buffer.from(frameBytes(2));
    bad[8] = bad[8]! ^ 1;
    s.write(cobsEncode(frameBytes(1)));
    s.write(cobsEncode(bad));
    s.write(cobsEncode(frameBytes(3)).subarray(0, 5));
    s.end(cobsEncode(frameBytes(3)).subarray(5));
    await new Promise((res) => s.on("end", res));
    expect(frames).toHaveLength(2);
    expect(rejects).toEqual(["BAD_CRC"]);
  });
});
