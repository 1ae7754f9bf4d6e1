import { VigilError } from "../../gateway/src/core/errors.ts";

/** The simulator cannot run as asked: no connection to the gateway, a bad option. */
export class SimError extends VigilError {
  override name = "SimError";
  declare readonly code: "SIM_CONNECT" | "SIM_SUBSCRIBE" | "SIM_OPTIONS";
  constructor(
    code: "SIM_CONNECT" | "SIM_SUBSCRIBE" | "SIM_OPTIONS",
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(code, message, opts);
  }
}
