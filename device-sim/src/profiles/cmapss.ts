/**
 * Replay of NASA C-MAPSS turbofan run-to-failure data (citation and parser in
 * gateway/src/infer/features/cmapss.ts; the data ships gzipped in models/data/cmapss). One device
 * per engine unit, one DATA frame per cycle: the 3 operational settings and 21 sensors in file
 * order, then the engine's cycle counter, as the `cmapss-v2` models expect.
 */
import {
  CMAPSS_CHANNELS,
  CMAPSS_WIDTH,
  loadCmapssSubset,
  type CmapssSplit,
  type CmapssSubset,
  type CmapssUnit,
} from "../../../gateway/src/infer/features/cmapss.ts";
import { Unit, type ChannelDescriptor } from "../../../gateway/src/protocol/frame.ts";
import type { SignalSource } from "./types.ts";

export type { CmapssSplit, CmapssSubset };

export const CMAPSS_PROFILE = "cmapss-v2";

/** HELLO channel descriptors: the feature pipeline's C-MAPSS channel names, unit "none". */
export const CMAPSS_DESCRIPTORS: readonly ChannelDescriptor[] = CMAPSS_CHANNELS.map((name) => ({
  name,
  unit: Unit.none,
}));

/** Device profile of a subset: FD001 is `cmapss-v2`, the others `cmapss-fd00x`. */
export function cmapssProfile(subset: CmapssSubset): string {
  return subset === "FD001" ? CMAPSS_PROFILE : `cmapss-${subset.toLowerCase()}`;
}

/**
 * Sources for `devices` devices of a subset and split. Device i replays unit i; when more
 * devices than units are asked for, units are reused in order (device i replays unit i mod N),
 * so load tests can run any number of engines.
 */
export function cmapssSources(subset: CmapssSubset, split: CmapssSplit, devices: number): CmapssReplay[] {
  const units = loadCmapssSubset(subset, split);
  return Array.from({ length: devices }, (_, i) => new CmapssReplay(units[i % units.length]!, subset));
}

export class CmapssReplay implements SignalSource {
  readonly profile: string;
  readonly channels = CMAPSS_DESCRIPTORS;
  readonly failureStep: number;
  readonly #unit: CmapssUnit;

  constructor(unit: CmapssUnit & { rulAtEnd: number }, subset: CmapssSubset) {
    this.#unit = unit;
    // Train units run to failure at their last cycle; test units fail RUL cycles after it.
    this.failureStep = unit.cycles - 1 + unit.rulAtEnd;
    this.profile = cmapssProfile(subset);
  }

  sample(step: number): Float32Array | undefined {
    if (step >= this.#unit.cycles) return undefined;
    return Float32Array.from(this.#unit.data.subarray(step * CMAPSS_WIDTH, (step + 1) * CMAPSS_WIDTH));
  }
}
