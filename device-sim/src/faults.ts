/**
 * Fault injection. Rates of link and value faults are probabilities per generated frame; those of
 * the session faults (disconnect, reboot) per pass of the simulator's send loop. Every injected
 * fault is counted, and link faults also record the gateway rejection they must cause, so a test
 * can reconcile the simulator's counts with the gateway's counters exactly.
 */
import { SimError } from "./errors.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import type { Rng } from "./rng.ts";

export const LINK_FAULTS = ["corrupt", "truncate", "drop", "duplicate", "reorder", "garbage"] as const;
export const VALUE_FAULTS = ["nan", "clockJump", "stuck", "drift", "spike"] as const;
/**
 * Session faults: `disconnect` drops the link (the device keeps its boot, its sequence counter and
 * its unacknowledged frames, and says HELLO again with the same boot id after reconnecting);
 * `reboot` restarts one device's MCU (a new boot id, its sequence restarts at 0 and the
 * unacknowledged frames in its RAM ring are lost, as PROTOCOL.md "Sequence numbers and boots"
 * describes).
 */
export const SESSION_FAULTS = ["disconnect", "reboot"] as const;
export type FaultKind =
  (typeof LINK_FAULTS)[number] | (typeof VALUE_FAULTS)[number] | (typeof SESSION_FAULTS)[number];
export const ALL_FAULTS: readonly FaultKind[] = [...LINK_FAULTS, ...VALUE_FAULTS, ...SESSION_FAULTS];

export type FaultRates = Partial<Record<FaultKind, number>>;

/** Parses `corrupt=0.01,drop=0.02` (or `all=0.01`). Throws naming the bad entry. */
export function parseFaultRates(spec: string): FaultRates {
  const rates: FaultRates = {};
  if (!spec.trim()) return rates;
  for (const part of spec.split(",")) {
    const [k, v] = part.split("=").map((s) => s.trim());
    const p = Number(v);
    if (!k || v === undefined || !Number.isFinite(p) || p < 0 || p > 1)
      throw new SimError("SIM_OPTIONS", `fault "${part}": expected NAME=PROBABILITY with 0 ≤ p ≤ 1`);
    if (k === "all") {
      for (const f of ALL_FAULTS) rates[f] = p;
    } else if ((ALL_FAULTS as readonly string[]).includes(k)) {
      rates[k as FaultKind] = p;
    } else {
      throw new SimError("SIM_OPTIONS", `fault "${k}" is unknown; known: ${ALL_FAULTS.join(", ")}`);
    }
  }
  return rates;
}

export class FaultCounters {
  readonly injected: Record<FaultKind, number> = Object.fromEntries(ALL_FAULTS.map((f) => [f, 0])) as Record<
    FaultKind,
    number
  >;
  /** Rejections the gateway must count, by reason, for the bytes this simulator put on the wire. */
  readonly expectedRejects: Record<string, number> = {};

  count(kind: FaultKind): void {
    this.injected[kind]++;
  }

  expect(reason: string, n = 1): void {
    this.expectedRejects[reason] = (this.expectedRejects[reason] ?? 0) + n;
  }

  /** Records the rejections that `bytes` (followed by a delimiter) will cause at the gateway. */
  expectGarbage(bytes: Uint8Array): void {
    const d = new StreamDecoder();
    d.push(bytes, {
      frame: () => this.expect("GARBAGE_DECODED_AS_FRAME"),
      reject: (e) => this.expect(e.reason),
    });
    d.push(Buffer.from([0]), {
      frame: () => this.expect("GARBAGE_DECODED_AS_FRAME"),
      reject: (e) => this.expect(e.reason),
    });
  }
}

/** Per-device sensor fault state: stuck and drifting channels persist for a while. */
export class SensorFaults {
  #stuck: { ch: number; value: number; left: number } | undefined;
  #drift: { ch: number; perStep: number; offset: number; left: number } | undefined;

  constructor(
    private readonly rng: Rng,
    private readonly rates: FaultRates,
    private readonly counters: FaultCounters,
  ) {}

  /** Applies value faults in place; returns true when a NaN/±Inf value was injected. */
  apply(values: Float32Array): boolean {
    const r = this.rng;
    const n = values.length;
    if (!this.#stuck && r.chance(this.rates.stuck ?? 0)) {
      const ch = r.int(0, n - 1);
      this.#stuck = { ch, value: values[ch]!, left: r.int(20, 200) };
      this.counters.count("stuck");
    }
    if (!this.#drift && r.chance(this.rates.drift ?? 0)) {
      const ch = r.int(0, n - 1);
      this.#drift = {
        ch,
        perStep: Math.abs(values[ch]! || 1) * r.range(0.002, 0.01),
        offset: 0,
        left: r.int(50, 300),
      };
      this.counters.count("drift");
    }
    if (this.#stuck) {
      values[this.#stuck.ch] = this.#stuck.value;
      if (--this.#stuck.left <= 0) this.#stuck = undefined;
    }
    if (this.#drift) {
      this.#drift.offset += this.#drift.perStep;
      values[this.#drift.ch] = values[this.#drift.ch]! + this.#drift.offset;
      if (--this.#drift.left <= 0) this.#drift = undefined;
    }
    if (r.chance(this.rates.spike ?? 0)) {
      const ch = r.int(0, n - 1);
      values[ch] = values[ch]! * r.range(4, 8) + r.range(-1, 1);
      this.counters.count("spike");
    }
    if (r.chance(this.rates.nan ?? 0)) {
      values[r.int(0, n - 1)] = r.chance(0.5) ? NaN : Infinity;
      this.counters.count("nan");
      return true;
    }
    return false;
  }
}

/**
 * A scripted sensor fault (the demo path and tests): from frame `from` of each device in
 * `devices` (default all), for `frames` frames (default until the source ends), the channel
 * `channel` (index or HELLO name) reads NaN (`nan`), holds its value at `from` (`stuck`), or
 * reads 5 × its value (`spike`, as in issue 14's spike test). Unlike the rates above it is
 * deterministic, so the gateway's sensor-fault alert can be expected at a known frame.
 */
export interface ScriptedSensorFault {
  kind: "nan" | "stuck" | "spike";
  channel: number | string;
  from: number;
  frames?: number;
  devices?: readonly number[];
}

const SCRIPT_RE = /^(nan|stuck|spike):([a-z0-9_]+)@(\d+)(?:\+(\d+))?(?:#(\d+(?:\/\d+)*))?$/;

/**
 * Parses `KIND:CHANNEL@FROM[+FRAMES][#ID/ID…]` entries separated by commas, e.g.
 * `stuck:s11@60+80` or `nan:3@10#1/2`. A CHANNEL of digits is an index; IDs are decimal device ids
 * (the Simulator refuses one it does not simulate). Throws naming the entry.
 */
export function parseScriptedFaults(spec: string): ScriptedSensorFault[] {
  const out: ScriptedSensorFault[] = [];
  if (!spec.trim()) return out;
  for (const part of spec.split(",")) {
    const m = SCRIPT_RE.exec(part.trim());
    if (!m)
      throw new RangeError(
        `sensor fault "${part}": expected KIND:CHANNEL@FROM[+FRAMES][#ID/ID…] with KIND nan, stuck or spike`,
      );
    const [, kind, ch, from, frames, ids] = m;
    out.push({
      kind: kind as ScriptedSensorFault["kind"],
      channel: /^\d+$/.test(ch!) ? Number(ch) : ch!,
      from: Number(from),
      ...(frames !== undefined ? { frames: Number(frames) } : {}),
      ...(ids !== undefined ? { devices: ids.split("/").map(Number) } : {}),
    });
  }
  return out;
}

/** Applies the scripted faults of one device (`channels`: its HELLO names) to frame `step`, in place. */
export class ScriptedFaults {
  readonly #script: ReadonlyArray<ScriptedSensorFault & { index: number }>;
  readonly #held = new Map<number, number>();

  constructor(script: readonly ScriptedSensorFault[], deviceId: number, channels: readonly string[]) {
    this.#script = script
      .filter((s) => s.devices === undefined || s.devices.includes(deviceId))
      .map((s) => {
        const index = typeof s.channel === "number" ? s.channel : channels.indexOf(s.channel);
        if (index < 0 || index >= channels.length)
          throw new RangeError(`sensor fault channel "${s.channel}" is not one of ${channels.join(", ")}`);
        return { ...s, index };
      });
  }

  /** Returns how many scripted faults touched this frame. */
  apply(values: Float32Array, step: number, counters: FaultCounters): number {
    let n = 0;
    this.#script.forEach((s, k) => {
      if (step < s.from || (s.frames !== undefined && step >= s.from + s.frames)) return;
      n++;
      if (s.kind === "nan") values[s.index] = NaN;
      else if (s.kind === "spike") values[s.index] = values[s.index]! * 5;
      else {
        if (step === s.from || !this.#held.has(k)) this.#held.set(k, values[s.index]!);
        values[s.index] = this.#held.get(k)!;
      }
      counters.count(s.kind);
    });
    return n;
  }
}
