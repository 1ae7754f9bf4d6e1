/**
 * Logging. Every stage takes a {@link Logger} (pino's API, the subset Vigil uses) and logs
 * structured fields, never counters or secrets inside the message string. `createLogger` builds
 * the process logger: pino JSON lines on stderr (journald picks them up under systemd).
 */
import { pino } from "pino";

/** pino's call shapes: `log.info({ field: 1 }, "message")` or `log.info("message")`. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  /** A logger whose lines all carry `bindings` (e.g. `{ component: "store" }`). */
  child(bindings: Record<string, unknown>): Logger;
}

const noop: LogFn = () => undefined;

/** Discards everything (tests, library use without a logger). */
export const silentLogger: Logger = {
  fatal: noop,
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  trace: noop,
  child: () => silentLogger,
};

/** JSON logs to stderr at `level` (default info). */
export function createLogger(level: string = "info"): Logger {
  return pino({ level, base: { app: "vigil" } }, pino.destination(2));
}
