/**
 * `npm run fuzz [-- --runs N --seed S]`: mutation fuzzing of the frame decoder (every frame
 * type of protocol v1 revision 1.2, firmware-update frames included), the stream decoder and the JSON form. Starts from valid frames (random bytes never pass a CRC) and
 * applies bit flips, byte writes, truncation, extension, insertion, deletion, length edits and
 * CRC-resealed payload edits. A crash is any exception that is not a FrameError, or an
 * accepted frame that does not re-encode to the same bytes (a DATA frame with NaN values: to the
 * same frame by value, since a NaN's payload bits do not survive a JS number). Exit 1 if there is any crash.
 */
import { parseArgs } from "node:util";
import fc from "fast-check";
import { Rng } from "../../device-sim/src/rng.ts";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { FrameError } from "../../gateway/src/protocol/errors.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  MAX_ENCODED,
  type DataFrame,
} from "../../gateway/src/protocol/frame.ts";
import { decodeJsonFrame, toJsonFrame } from "../../gateway/src/protocol/json.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import { anyFrameArb } from "../helpers/frames.ts";
import { mutate, MUTATIONS } from "../helpers/mutate.ts";

const { values: a } = parseArgs({ options: { runs: { type: "string" }, seed: { type: "string" } } });
const runs = Number(a.runs ?? 1_000_000);
const seed = Number(a.seed ?? 1);
const r = new Rng(seed);
const frames = fc.sample(anyFrameArb, { numRuns: 3000, seed }).map((f) => ({ f, raw: encodeFrame(f) }));
const byType: Record<number, number> = {};
for (const { f } of frames) byType[f.type] = (byType[f.type] ?? 0) + 1;
const reasons: Record<string, number> = {};
const crashes: string[] = [];
let accepted = 0;

/** Same DATA frame by value (NaN equals NaN; ±0 and everything else exact). */
function sameData(a: DataFrame, b: DataFrame): boolean {
  if (a.deviceId !== b.deviceId || a.seq !== b.seq || a.timestampUs !== b.timestampUs) return false;
  if (a.flags !== b.flags || a.nonFinite !== b.nonFinite || a.values.length !== b.values.length) return false;
  return a.values.every((v, i) => Object.is(v, b.values[i]));
}

function crash(what: string, input: Uint8Array, e: unknown): void {
  if (crashes.length < 20)
    crashes.push(
      `${what} ${Buffer.from(input).toString("hex")}: ${e instanceof Error ? e.stack : String(e)}`,
    );
  else crashes.push("");
}

const stream = new StreamDecoder();
const sink = {
  frame: () => undefined,
  reject: () => undefined,
};
const t0 = performance.now();
for (let i = 0; i < runs; i++) {
  const base = frames[i % frames.length]!;
  const kind = MUTATIONS[r.int(0, MUTATIONS.length - 1)]!;
  const m = mutate(base.raw, kind, r);
  try {
    const f = decodeFrame(m);
    accepted++;
    if (f.type === FrameType.Data && f.nonFinite !== undefined) {
      // NaN payload bits do not survive a JS number: such a frame re-encodes with the canonical
      // quiet NaN (its stored raw bytes are what the device sent), so compare it by value.
      const g = decodeFrame(encodeFrame(f));
      if (g.type !== FrameType.Data || !sameData(f, g))
        crash("re-encode differs", m, new Error("accepted NaN frame does not round trip by value"));
    } else if (!encodeFrame(f).equals(m))
      crash("re-encode differs", m, new Error("accepted frame is not canonical"));
  } catch (e) {
    if (e instanceof FrameError) reasons[e.reason] = (reasons[e.reason] ?? 0) + 1;
    else crash("decodeFrame", m, e);
  }
  // Every 8th input also goes through the stream decoder, COBS-framed or raw.
  if ((i & 7) === 0) {
    try {
      stream.push(r.chance(0.5) ? cobsEncode(m) : m, sink);
      if (stream.buffered > MAX_ENCODED) crash("stream bound", m, new Error(`buffered ${stream.buffered}`));
    } catch (e) {
      crash("StreamDecoder", m, e);
    }
  }
  // Every 64th input: a mutated JSON form.
  if ((i & 63) === 0 && (base.f.type === 1 || base.f.type === 2)) {
    const j = Buffer.from(toJsonFrame(base.f));
    const jm = mutate(j, MUTATIONS[r.int(0, 6)]!, r);
    try {
      decodeJsonFrame(jm);
    } catch (e) {
      if (!(e instanceof FrameError)) crash("decodeJsonFrame", jm, e);
    }
  }
}
const s = (performance.now() - t0) / 1000;
console.log(`fuzz: ${runs.toLocaleString("en")} mutations in ${s.toFixed(1)} s (seed ${seed})`);
console.log(`  base frames by type: ${JSON.stringify(byType)}`);
console.log(`  accepted (mutation left a valid frame): ${accepted}`);
for (const [k, v] of Object.entries(reasons).sort((x, y) => y[1] - x[1]))
  console.log(`  ${k.padEnd(16)} ${v}`);
console.log(`  crashes: ${crashes.length}`);
for (const c of crashes.slice(0, 5)) console.log(`  ${c}`);
console.log(
  JSON.stringify({
    fuzz: "codec",
    runs,
    seed,
    baseFramesByType: byType,
    seconds: Number(s.toFixed(1)),
    accepted,
    rejections: reasons,
    crashes: crashes.length,
  }),
);
process.exitCode = crashes.length === 0 ? 0 : 1;
