import { pino, type Logger } from "pino";

/** JSON logs to stderr (journald picks them up under systemd). Secrets never go in here. */
export function createLogger(level: string = "info"): Logger {
  return pino({ level, base: { app: "vigil" } }, pino.destination(2));
}
export type { Logger };
