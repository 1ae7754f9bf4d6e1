/**
 * Logging. Every stage takes a {@link Logger} (pino's API, the subset Vigil uses) and logs
 * structured fields, never counters or secrets inside the message string; every line carries a
 * `component` (runtime.ts hands each stage `log.child({ component })`). `createLogger` builds
 * the process logger: pino JSON lines on stderr (journald picks them up under systemd, each with
 * its syslog priority), or pino-pretty's human-readable lines when stderr is a terminal.
 *
 * Secrets never reach the output: values under the keys in {@link REDACTED_KEYS} (at any depth
 * up to three levels) are replaced by `[redacted]`, and every URL in the finished line (message and
 * error stacks included) is redacted as `redactUrl` does: credentials, key-like path segments and
 * host labels, and query values become `***`.
 */
import { fstatSync } from "node:fs";
import type { Writable } from "node:stream";
import { pino, type DestinationStream } from "pino";
import pretty from "pino-pretty";
import { redactText } from "./errors.ts";

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

/** Field names whose values are never logged (case as written; pino paths are exact). */
export const REDACTED_KEYS = [
  "password",
  "passphrase",
  "privateKey",
  "senderKey",
  "secret",
  "token",
  "apiKey",
  "authorization",
  "cookie",
  "mnemonic",
] as const;

/** pino `redact` paths: each key at the top level and one or two objects down. */
const REDACT_PATHS = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

/**
 * The userinfo of a URL inside a JSON line: `scheme://` then `user[:password]@`. The user part
 * stops at characters a JSON string or a URL authority cannot hold unescaped there.
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"\\]+@/gi;

/**
 * Redacts every URL in a finished log line: credentials first (`mqtt://u:p@h` → `mqtt://***@h`,
 * even when the rest does not parse), then keys in the host, path or query ({@link redactText}).
 */
export function redactLine(line: string): string {
  return redactText(line.includes("@") ? line.replace(URL_USERINFO, "$1***@") : line);
}

/** Loggers made by createLogger, with every child made from them (a child keeps its own level). */
const families = new WeakMap<Logger, Set<WeakRef<pino.Logger>>>();

/** A family is first pruned of collected children when it reaches this size. */
const PRUNE_MIN = 64;

/** Drops the refs whose child was collected. */
function prune(family: Set<WeakRef<pino.Logger>>): void {
  for (const ref of family) if (ref.deref() === undefined) family.delete(ref);
}

/** How many children of `logger` (from createLogger) setLogLevel would visit; for tests. */
export function familySize(logger: Logger): number {
  return families.get(logger)?.size ?? 0;
}

export interface LoggerOptions {
  /**
   * "json": pino JSON lines; "pretty": pino-pretty's human-readable lines; "auto" (default):
   * pretty when the destination is a terminal (stderr by default), JSON otherwise.
   */
  format?: "auto" | "json" | "pretty";
  /** Where lines go. Default: file descriptor 2 (stderr), written synchronously. */
  destination?: Writable | DestinationStream;
  /** Colours in pretty output. Default: when the destination is a colour terminal. */
  colorize?: boolean;
  /**
   * Prefix each JSON line with its syslog priority (`<3>` error, `<4>` warn, `<6>` info, …), which
   * journald strips and records as the line's priority (systemd.exec SyslogLevelPrefix=, on by
   * default), so `journalctl -p warning` finds warnings. Default: when stderr is the journal
   * (`JOURNAL_STREAM` names stderr's device and inode, systemd.exec(5)).
   */
  journal?: boolean;
}

/** pino level → syslog priority (RFC 5424 §6.2.1): fatal 2 crit, error 3, warn 4, info 6, debug/trace 7. */
function syslogPriority(level: number): number {
  return level >= 60 ? 2 : level >= 50 ? 3 : level >= 40 ? 4 : level >= 30 ? 6 : 7;
}

/** `<N>` + the line, N the priority of the line's pino `level` (the first field pino writes). */
export function withPriority(line: string): string {
  const m = /^\{"level":(\d+)/.exec(line);
  return m ? `<${syslogPriority(Number(m[1]))}>${line}` : line;
}

/**
 * True when file descriptor 2 is the journal stream systemd connected: `JOURNAL_STREAM` is
 * "DEVICE:INODE" of it (systemd.exec(5)); a stderr redirected elsewhere by the unit's user is not.
 */
export function stderrIsJournal(
  env: NodeJS.ProcessEnv = process.env,
  stat: () => { dev: number; ino: number } = () => fstatSync(2),
): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  try {
    const st = stat();
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/**
 * The process logger at `level` (default info): JSON lines on stderr, or human-readable ones on
 * a terminal (see {@link LoggerOptions}), with secrets redacted. Base fields: `app: "vigil"`.
 */
export function createLogger(level: string = "info", o: LoggerOptions = {}): Logger {
  const tty = o.destination ? (o.destination as { isTTY?: boolean }).isTTY === true : process.stderr.isTTY;
  const format = o.format ?? "auto";
  const human = format === "pretty" || (format === "auto" && tty);
  const dest: DestinationStream | Writable = human
    ? pretty({
        destination: o.destination ?? 2,
        sync: true,
        colorize: o.colorize ?? (tty && process.stderr.hasColors?.() === true),
        ignore: "pid,hostname,app,component",
        translateTime: "SYS:HH:MM:ss.l",
        // component first, as a prefix: "INFO (store): …"
        messageFormat: "{if component}({component}) {end}{msg}",
        hideObject: false,
      })
    : (o.destination ?? pino.destination({ dest: 2, sync: true }));
  const family = new Set<WeakRef<pino.Logger>>();
  // Pruned whenever it has doubled since the last prune (amortised O(1) a child), not only by
  // setLogLevel: a caller that makes a child per event would otherwise pile up refs until SIGHUP.
  let pruneAt = PRUNE_MIN;
  const journal = !human && (o.journal ?? (o.destination === undefined && stderrIsJournal()));
  const root = pino(
    {
      level,
      base: { app: "vigil" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      hooks: { streamWrite: journal ? (l) => withPriority(redactLine(l)) : redactLine },
      onChild: (c) => {
        family.add(new WeakRef(c));
        if (family.size < pruneAt) return;
        prune(family);
        pruneAt = Math.max(PRUNE_MIN, 2 * family.size);
      },
    },
    dest as DestinationStream,
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
