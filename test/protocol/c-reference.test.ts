/**
 * The C99 firmware reference (hardware/firmware-ref/) must match the TypeScript codec byte
 * for byte. This suite builds it with `make` (a missing C compiler is a FAILURE, not a skip:
 * CI installs `cc`), then drives build/vigil_kat over its line protocol:
 * known-answer vectors (decode, encode, rejects), the incremental receiver against
 * StreamDecoder, random frames of every type from encodeFrame, and the bootloader's SHA-256.
 * `make … test` also runs the firmware-update host test (test/test_fwu.c: install, trial,
 * revert, refusals and a power cut at every flash operation); its failure fails this suite.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import type { FrameError } from "../../gateway/src/protocol/errors.ts";
import {
  encodeFrame,
  FrameType,
  MAX_CHANNELS,
  MAX_PAYLOAD,
  type ChannelDescriptor,
  type DataFrame,
  type Frame,
  type HelloFrame,
} from "../../gateway/src/protocol/frame.ts";
import { StreamDecoder, type DecodedFrame } from "../../gateway/src/protocol/stream-decoder.ts";
import {
  frameToJson,
  fwAbortFrameArb,
  fwChunkAckFrameArb,
  fwChunkFrameArb,
  fwOfferFrameArb,
  fwStatusFrameArb,
  nackFrameArb,
} from "../helpers/frames.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const REF_DIR = join(ROOT, "hardware", "firmware-ref");
const KAT = join(REF_DIR, "build", "vigil_kat");

interface Vectors {
  crcCheck: { input: string; crc32: number };
  valid: Array<{ name: string; frame: Record<string, unknown>; hex: string; wire: string }>;
  invalid: Array<{ name: string; hex: string; reason: string }>;
}
const vectors = JSON.parse(readFileSync(join(ROOT, "hardware", "vectors", "frames.json"), "utf8")) as Vectors;

/** One long-lived vigil_kat process; requests are answered strictly in order. */
class Kat {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #exited = false;
  #stderr = "";

  constructor(path: string) {
    this.#proc = spawn(path, [], { stdio: ["pipe", "pipe", "pipe"] });
    this.#proc.stderr.setEncoding("utf8");
    this.#proc.stderr.on("data", (d: string) => (this.#stderr += d));
    const rl = createInterface({ input: this.#proc.stdout });
    rl.on("line", (l) => {
      this.#lines.push(l);
      this.#wake();
    });
    this.#proc.on("exit", () => {
      this.#exited = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async #line(): Promise<string> {
    for (;;) {
      const l = this.#lines.shift();
      if (l !== undefined) return l;
      if (this.#exited) throw new Error(`vigil_kat exited unexpectedly. stderr: ${this.#stderr}`);
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  /** Sends one request line; returns the answer line. */
  async ask(request: string): Promise<string> {
    this.#proc.stdin.write(request + "\n");
    return this.#line();
  }

  /** `stream`/`streamflush`: returns the event lines after "ok N". */
  async stream(bytes: Uint8Array, flush: boolean): Promise<string[]> {
    const head = await this.ask(`${flush ? "streamflush" : "stream"} ${Buffer.from(bytes).toString("hex")}`);
    const m = /^ok (\d+)$/.exec(head);
    if (!m) throw new Error(`unexpected stream answer: ${head}`);
    const out: string[] = [];
    for (let i = 0; i < Number(m[1]); i++) out.push(await this.#line());
    return out;
  }

  kill(): void {
    this.#proc.stdin.end();
    this.#proc.kill();
  }
}

let kat: Kat | undefined;
function tool(): Kat {
  if (!kat) throw new Error("vigil_kat is not running (build failed, see beforeAll)");
  return kat;
}

beforeAll(() => {
  try {
    execFileSync("cc", ["--version"], { stdio: "pipe" });
  } catch (e) {
    throw new Error(
      "No C compiler: `cc --version` failed. The C reference test does not skip; install a C99 compiler " +
        `(e.g. apt-get install build-essential) — CI installs it. Cause: ${String(e)}`,
    );
  }
  try {
    execFileSync("make", ["-C", REF_DIR, "tool", "test"], { stdio: "pipe", encoding: "utf8" });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(
      `make -C hardware/firmware-ref tool test failed:\n${err.stdout ?? ""}\n${err.stderr ?? ""}`,
    );
  }
  kat = new Kat(KAT);
});

afterAll(() => {
  kat?.kill();
  kat = undefined;
});

// ---------------------------------------------------------------------------------------
// Helpers

/** Comparable form of a frame: DATA values as binary32 numbers (Math.fround of either side). */
function normalize(frame: unknown): unknown {
  const f = frame as { type?: unknown; values?: ArrayLike<number> };
  if (f.type === FrameType.Data && f.values !== undefined) {
    return { ...f, values: Array.from(f.values, (v) => Math.fround(v)) };
  }
  return frame;
}

/** JSON for the tool's `encode`: keeps -0 (JSON.stringify would print 0); "NaN"/"Infinity" stay strings. */
function numberText(v: number | string): string {
  if (typeof v === "string") return JSON.stringify(v);
  return Object.is(v, -0) ? "-0" : String(v);
}
function frameJson(frame: Frame | Record<string, unknown>): string {
  const values = (frame as { values?: ArrayLike<number | string> }).values;
  if (values === undefined)
    return JSON.stringify(
      Object.values(frame).some((v) => v instanceof Uint8Array) ? frameToJson(frame as Frame) : frame,
    );
  const text = "[" + Array.from(values, numberText).join(",") + "]";
  return JSON.stringify({ ...frame, values: "@VALUES@" }).replace('"@VALUES@"', text);
}

async function cDecode(hex: string): Promise<unknown> {
  const answer = await tool().ask(`decode ${hex}`);
  expect(answer.startsWith("ok "), `C decode of ${hex}: ${answer}`).toBe(true);
  return JSON.parse(answer.slice(3)) as unknown;
}

async function cEncode(frame: Frame | Record<string, unknown>): Promise<{ hex: string; wire: string }> {
  const answer = await tool().ask(`encode ${frameJson(frame)}`);
  const m = /^ok ([0-9a-f]+) ([0-9a-f]+)$/.exec(answer);
  expect(m, `C encode of ${frameJson(frame)}: ${answer}`).not.toBeNull();
  return { hex: m?.[1] ?? "", wire: m?.[2] ?? "" };
}

/** What the TypeScript StreamDecoder yields on `bytes`, in the tool's line format. */
function tsStream(bytes: Uint8Array, flush: boolean, chunk = bytes.length || 1): string[] {
  const out: string[] = [];
  const sink = {
    frame: (d: DecodedFrame) => out.push(`frame ${d.raw.toString("hex")}`),
    reject: (e: FrameError) => out.push(`reject ${e.reason}`),
  };
  const dec = new StreamDecoder();
  for (let i = 0; i < bytes.length; i += chunk) dec.push(bytes.subarray(i, i + chunk), sink);
  if (flush) dec.flush(sink);
  return out;
}

// ---------------------------------------------------------------------------------------
// Known-answer vectors

describe("C reference vs known-answer vectors", () => {
  it("has vectors to check", () => {
    expect(vectors.valid.length).toBeGreaterThan(0);
    expect(vectors.invalid.length).toBeGreaterThan(0);
    // The C CRC check value itself is asserted by test_host (run by make test above).
    expect(vectors.crcCheck.crc32).toBe(0xcbf43926);
  });

  for (const v of vectors.valid) {
    it(`decodes and re-encodes valid vector ${v.name}`, async () => {
      expect(normalize(await cDecode(v.hex))).toEqual(normalize(v.frame));
      const enc = await cEncode(v.frame);
      expect(enc.hex).toBe(v.hex);
      expect(enc.wire).toBe(v.wire);
    });
  }

  for (const v of vectors.invalid) {
    it(`rejects invalid vector ${v.name} as ${v.reason}`, async () => {
      expect(await tool().ask(`decode ${v.hex}`)).toBe(`err ${v.reason}`);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Incremental receiver vs StreamDecoder

describe("C receiver vs TypeScript StreamDecoder", () => {
  const hex = (h: string): Buffer => Buffer.from(h, "hex");

  it("yields the same frames and rejects on wires separated by garbage", async () => {
    const parts: Buffer[] = [Buffer.from([0, 0])];
    for (const v of vectors.valid) {
      parts.push(hex(v.wire));
      parts.push(Buffer.from([0x11, 0x22, 0x33, 0x00])); // garbage: BAD_COBS
      parts.push(Buffer.from([0x02, 0x22, 0x00])); // decodes to 1 byte: TRUNCATED
      parts.push(Buffer.from([0x00, 0x00])); // empty segments: ignored
    }
    parts.push(Buffer.alloc(300, 0x55), Buffer.from([0])); // oversized run: OVERSIZED once
    parts.push(Buffer.alloc(249, 0x01), Buffer.from([0])); // longest accepted segment
    parts.push(Buffer.alloc(250, 0x01), Buffer.from([0])); // one byte too long
    for (const v of vectors.invalid) parts.push(cobsEncode(hex(v.hex)));
    parts.push(hex(vectors.valid[0]?.wire ?? ""));
    parts.push(Buffer.from([0x05, 0x41])); // trailing partial frame
    const bytes = Buffer.concat(parts);

    const expected = tsStream(bytes, false);
    expect(expected.filter((l) => l.startsWith("frame ")).length).toBe(vectors.valid.length + 1);
    expect(expected).toContain("reject OVERSIZED");
    expect(await tool().stream(bytes, false)).toEqual(expected);
    expect(await tool().stream(bytes, true)).toEqual(tsStream(bytes, true));
    // The TypeScript decoder itself is chunking-independent; the C one is fed byte-wise in test_host.
    expect(tsStream(bytes, false, 7)).toEqual(expected);
  });

  it("agrees on random mixtures of frames, garbage and long runs", async () => {
    const segment = fc.oneof(
      fc.integer({ min: 0, max: vectors.valid.length - 1 }).map((i) => hex(vectors.valid[i]?.wire ?? "")),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc.integer({ min: 240, max: 520 }).map((n) => Buffer.alloc(n, 0x7e)),
      fc.constant(Buffer.from([0])),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { maxLength: 12 }), fc.boolean(), async (segs, flush) => {
        const bytes = Buffer.concat(segs);
        expect(await tool().stream(bytes, flush)).toEqual(tsStream(bytes, flush));
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// Random frames from the TypeScript encoder

const u32 = fc.nat({ max: 0xffff_ffff });
const finiteF32 = fc.float({ noNaN: true, noDefaultInfinity: true });

const dataFrame: fc.Arbitrary<DataFrame> = fc.record({
  type: fc.constant(FrameType.Data),
  deviceId: u32,
  seq: u32,
  timestampUs: fc.oneof(fc.constant(0), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  flags: fc.nat({ max: 255 }),
  values: fc.array(finiteF32, { minLength: 1, maxLength: MAX_CHANNELS }).map((a) => Float32Array.from(a)),
});

const nameChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789_");
const profileChar = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const channel: fc.Arbitrary<ChannelDescriptor> = fc.record({
  name: fc.string({ unit: nameChar, minLength: 1, maxLength: 15 }),
  unit: fc.nat({ max: 12 }),
});

const helloFrame: fc.Arbitrary<HelloFrame> = fc
  .record({
    type: fc.constant(FrameType.Hello),
    deviceId: u32,
    bootId: u32,
    firmware: fc.record({
      major: fc.nat({ max: 255 }),
      minor: fc.nat({ max: 255 }),
      patch: fc.nat({ max: 65535 }),
    }),
    profile: fc.string({ unit: profileChar, maxLength: 31 }),
    channels: fc.array(channel, { minLength: 1, maxLength: MAX_CHANNELS }),
  })
  .map((h) => {
    // Keep the schema within MAX_PAYLOAD (the encoder refuses larger ones).
    let len = 13 + h.profile.length + 1;
    const channels: ChannelDescriptor[] = [];
    for (const c of h.channels) {
      if (len + 2 + c.name.length > MAX_PAYLOAD) break;
      len += 2 + c.name.length;
      channels.push(c);
    }
    return { ...h, channels };
  });

describe("C reference vs TypeScript encodeFrame on random frames", () => {
  const check = async (frame: Frame): Promise<void> => {
    const raw = encodeFrame(frame);
    const hex = raw.toString("hex");
    expect(normalize(await cDecode(hex))).toEqual(normalize(frame));
    const enc = await cEncode(frame);
    expect(enc.hex).toBe(hex);
    expect(enc.wire).toBe(cobsEncode(raw).toString("hex"));
  };

  it("DATA frames decode to the same fields and re-encode to the same bytes", async () => {
    await fc.assert(fc.asyncProperty(dataFrame, check), { numRuns: 150 });
  });

  it("HELLO frames decode to the same fields and re-encode to the same bytes", async () => {
    await fc.assert(fc.asyncProperty(helloFrame, check), { numRuns: 150 });
  });

  it("v1.1 frames (NACK with BUSY, firmware update) decode to the same fields and re-encode to the same bytes", async () => {
    const v11 = fc.oneof(
      nackFrameArb,
      fwOfferFrameArb,
      fwChunkFrameArb,
      fwAbortFrameArb,
      fwStatusFrameArb,
      fwChunkAckFrameArb,
    );
    await fc.assert(
      fc.asyncProperty(v11, async (frame) => {
        const raw = encodeFrame(frame);
        const hex = raw.toString("hex");
        expect(await cDecode(hex)).toEqual(frameToJson(frame));
        const enc = await cEncode(frame);
        expect(enc.hex).toBe(hex);
        expect(enc.wire).toBe(cobsEncode(raw).toString("hex"));
      }),
      { numRuns: 300 },
    );
  });

  it("the C encoder refuses what the TypeScript encoder refuses (BUSY without retry_after, release 0, …)", async () => {
    const refused: Array<Record<string, unknown>> = [
      { type: 4, deviceId: 1, seq: 0, reason: 8 },
      { type: 4, deviceId: 1, seq: 0, reason: 6, retryAfterMs: 5 },
      { type: 17, deviceId: 1, releaseId: 0, offset: 0, data: "00" },
      { type: 17, deviceId: 1, releaseId: 1, offset: 0, data: "" },
      { type: 17, deviceId: 1, releaseId: 1, offset: 4294967295, data: "0000" },
      { type: 20, deviceId: 1, releaseId: 1, nextOffset: 0, status: 4 },
      {
        type: 19,
        deviceId: 1,
        state: 0,
        result: 0,
        reason: 0,
        window: 17,
        releaseId: 0,
        nextOffset: 0,
        slotSize: 0,
        securityCounter: 0,
        firmware: { major: 1, minor: 0, patch: 0 },
        maxChunk: 224,
      },
    ];
    for (const f of refused) {
      expect(await tool().ask(`encode ${JSON.stringify(f)}`), JSON.stringify(f)).toMatch(/^err /);
    }
  });
});

// ---------------------------------------------------------------------------------------
// SHA-256 of the bootloader (hardware/firmware-ref/vigil_sha256.c) vs node:crypto

describe("C SHA-256 (the bootloader's streaming hash) vs node:crypto", () => {
  it("agrees on random inputs of 0..4,000 bytes, including every length around the 64-byte block", async () => {
    const lengths = fc.oneof(fc.integer({ min: 0, max: 130 }), fc.integer({ min: 0, max: 4000 }));
    await fc.assert(
      fc.asyncProperty(
        lengths.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        async (bytes) => {
          const want = createHash("sha256").update(bytes).digest("hex");
          expect(await tool().ask(`sha256 ${Buffer.from(bytes).toString("hex")}`)).toBe(`ok ${want}`);
        },
      ),
      { numRuns: 300 },
    );
  });
});
