import type { ChannelDescriptor } from "../../../gateway/src/protocol/frame.ts";

/** A source of sensor samples for one simulated device. */
export interface SignalSource {
  /** Profile name sent in HELLO; selects the gateway's model (e.g. `rotating-v1`, `cmapss-v2`). */
  readonly profile: string;
  readonly channels: readonly ChannelDescriptor[];
  /**
   * Ground truth for model evaluation: the step (0-based frame index) at which the machine
   * fails, when it fails within the simulation; undefined if it does not.
   */
  readonly failureStep: number | undefined;
  /** The sample for `step`, or undefined once the machine has failed / the record has ended. */
  sample(step: number): Float32Array | undefined;
}
