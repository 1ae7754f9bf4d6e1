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

/** Loggers made by createLogger, with every child made from them (a child keeps its own level). */
const families = new WeakMap<Logger, Set<WeakRef<pino.Logger>>>();

/** JSON logs to stderr at `level` (default info). */
export function createLogger(level: string = "info"): Logger {
  const family = new Set<WeakRef<pino.Logger>>();
  const root = pino(
    { level, base: { app: "vigil" }, onChild: (c) => void family.add(new WeakRef(c)) },
    pino.destination(2),
  );
  families.set(root, family);
  return root;
}

/**
 * Changes the level of a logger from createLogger and of all its children (SIGHUP reload). pino
 * children copy the level when created, so each is updated too.
 */
export function setLogLevel(logger: Logger, level: string): void {
  (logger as pino.Logger).level = level;
  for (const ref of families.get(logger) ?? []) {
    const c = ref.deref();
    if (c) c.level = level;
    else families.get(logger)?.delete(ref);
  }
}
