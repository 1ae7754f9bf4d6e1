/**
 * The JSON form of HELLO and DATA frames (hardware/frame-json.schema.json), converted to the
 * binary frame so both forms leave identical records. Validation uses ajv against the
 * published schema, so the schema and the code cannot drift apart.
 */
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { fromRoot } from "../core/paths.ts";
import { FrameEncodeError, FrameError } from "./errors.ts";
import { decodeFrame, deviceIdHex, encodeFrame, FrameType, type Frame } from "./frame.ts";
import type { DecodedFrame } from "./stream-decoder.ts";

const schema = JSON.parse(readFileSync(fromRoot("hardware", "frame-json.schema.json"), "utf8")) as object;
const validate = new Ajv2020({ allErrors: false }).compile(schema);
/** JSON payloads larger than this are refused before parsing (bounded work per message). */
export const MAX_JSON_BYTES = 4096;

interface DataJson {
  v: 1;
  type: "data";
  device: string;
  seq: number;
  ts?: number;
  flags?: number;
  /** null: no reading (becomes a NaN value, PROTOCOL.md rev 1.2). */
  values: Array<number | null>;
}
interface HelloJson {
  v: 1;
  type: "hello";
  device: string;
  boot: number;
  fw: string;
  profile: string;
  channels: Array<{ name: string; unit: number }>;
}

/** Parses and validates a JSON frame; returns the binary frame it stands for. */
export function decodeJsonFrame(payload: Uint8Array): DecodedFrame {
  if (payload.length > MAX_JSON_BYTES)
    throw new FrameError("OVERSIZED", `JSON frame of ${payload.length} bytes exceeds ${MAX_JSON_BYTES}`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("utf8"));
  } catch (e) {
    throw new FrameError("BAD_JSON", "payload is not valid JSON", { cause: e });
  }
  if (!validate(doc)) {
    const err = validate.errors?.[0];
    throw new FrameError(
      "BAD_JSON",
      `JSON frame violates the schema${err ? `: ${err.instancePath || "/"} ${err.message}` : ""}`,
    );
  }
  const j = doc as DataJson | HelloJson;
  let frame: Frame;
  if (j.type === "data") {
    frame = {
      type: FrameType.Data,
      deviceId: parseInt(j.device, 16),
      seq: j.seq,
      timestampUs: j.ts ?? 0,
      flags: j.flags ?? 0,
      values: Float32Array.from(j.values, (v) => (v === null ? NaN : v)),
    };
  } else {
    const [major, minor, patch] = j.fw.split(".").map(Number) as [number, number, number];
    frame = {
      type: FrameType.Hello,
      deviceId: parseInt(j.device, 16),
      bootId: j.boot,
      firmware: { major, minor, patch },
      profile: j.profile,
      channels: j.channels,
    };
  }
  let raw: Buffer;
  try {
    raw = encodeFrame(frame);
  } catch (e) {
    throw new FrameError("BAD_JSON", e instanceof Error ? e.message : "JSON frame cannot be encoded", {
      cause: e,
    });
  }
  // Decoding the binary form applies exactly the checks a binary frame gets (sizes; a number
  // beyond float32 becomes ±Inf and is marked like a binary one), so the two forms cannot differ.
  return { frame: decodeFrame(raw), raw };
}

/**
 * The JSON form of a DATA or HELLO frame (the simulator's `--json` mode and tests). A NaN or ±Inf
 * value becomes null (JSON has no such numbers; JSON.stringify writes null), which reads back as NaN.
 */
export function toJsonFrame(frame: Frame): string {
  if (frame.type === FrameType.Data)
    return JSON.stringify({
      v: 1,
      type: "data",
      device: deviceIdHex(frame.deviceId),
      seq: frame.seq,
      ts: frame.timestampUs,
      flags: frame.flags,
      values: Array.from(frame.values),
    });
  if (frame.type === FrameType.Hello)
    return JSON.stringify({
      v: 1,
      type: "hello",
      device: deviceIdHex(frame.deviceId),
      boot: frame.bootId,
      fw: `${frame.firmware.major}.${frame.firmware.minor}.${frame.firmware.patch}`,
      profile: frame.profile,
      channels: frame.channels,
    });
  throw new FrameEncodeError("type", "only DATA and HELLO frames have a JSON form");
}
