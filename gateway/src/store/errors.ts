/**
 * Typed store errors. Ingest maps every `StoreUnavailableError` (including `StoreFullError`)
 * to NACK `STORE_UNAVAILABLE` / no PUBACK: the sender keeps its frame and resends later.
 */
import { VigilError } from "../core/errors.ts";

export type UnavailableReason = "DISK_FULL" | "IO_ERROR" | "CORRUPTION" | "CLOSED" | "RECOVERING";

/** The store cannot accept writes now (disk full, IO error, closed, recovering). */
export class StoreUnavailableError extends VigilError {
  override name = "StoreUnavailableError";
  readonly reason: UnavailableReason | "FULL";
  constructor(
    reason: UnavailableReason | "FULL",
    message: string,
    opts: { cause?: unknown; details?: string; code?: string } = {},
  ) {
    super(opts.code ?? "STORE_UNAVAILABLE", message, opts);
    this.reason = reason;
  }
}

/** The store reached its configured bound (records or bytes); policy: refuse, never drop unanchored data. */
export class StoreFullError extends StoreUnavailableError {
  override name = "StoreFullError";
  constructor(message: string) {
    super("FULL", message, { code: "STORE_FULL" });
  }
}

/** An outbox/batch invariant would be broken (a skipped or repeated batch sequence). */
export class StoreOrderError extends VigilError {
  override name = "StoreOrderError";
  constructor(message: string) {
    super("STORE_ORDER", message);
  }
}

/** The store lost or damaged data it had acknowledged, or its files do not fit together. */
export class StoreIntegrityError extends VigilError {
  override name = "StoreIntegrityError";
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super("STORE_INTEGRITY", message, problems.length ? { details: problems.slice(0, 20).join("; ") } : {});
  }
}

/**
 * The store was written by a newer Vigil, in a format this version does not read (format.ts).
 * Nothing was read or written: the fix is to run that version again, not to salvage.
 */
export class StoreFormatError extends VigilError {
  override name = "StoreFormatError";
  constructor(
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      "STORE_FORMAT",
      `the store was written by a newer Vigil (store format ${found}; this version reads formats up to ${supported}) and would be misread; run the newer version again (an install rollback keeps the store: install.sh again to go forth)`,
    );
  }
}

/**
 * One stored value that does not decode (a frame record shorter than its fixed part, a leaf
 * preimage of no known kind): the store's bytes were damaged, as LevelDB's own checksums did not
 * catch. `index` is the arrival index, so a full check can name it and go on past it.
 */
export class StoreRecordError extends StoreIntegrityError {
  override name = "StoreRecordError";
  constructor(
    readonly index: number,
    what: string,
    cause: unknown,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${what} ${index} is damaged (${why})`, [`${what} ${index} is damaged (${why})`]);
  }
}

/**
 * Translates an abstract-level / classic-level error into a typed store error. Level's own
 * messages name file paths and OS errors, never data; they go to `cause`, not the message.
 */
export function translateLevelError(err: unknown, what: string): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const text = String((err as { message?: unknown } | null)?.message ?? err);
  const cause = (err as { cause?: { message?: unknown; code?: unknown } } | null)?.cause;
  const all = `${text} ${String(cause?.message ?? "")}`;
  if (/No space left|ENOSPC|disk full/i.test(all))
    return new StoreUnavailableError("DISK_FULL", `${what} failed: disk full`, { cause: err });
  // The OS error first: LevelDB names the file, and its LOCK file's path ("…/db/LOCK: Read-only
  // file system") is no sign of another process holding the lock.
  const file = /IO error: (?:lock )?(\S+): /.exec(all)?.[1];
  if (/Read-only file system|EROFS/.test(all))
    return new StoreUnavailableError(
      "IO_ERROR",
      `${what} failed: the store's file system is read-only${file ? ` (${file})` : ""}; remount it read-write, or give a dataDir on a writable file system`,
      { cause: err },
    );
  if (/Permission denied|EACCES|EPERM/.test(all))
    return new StoreUnavailableError(
      "IO_ERROR",
      `${what} failed: permission denied${file ? ` on ${file}` : ""}; run the command as the user that owns the store's files (the Pi service runs as vigil: sudo -u vigil vigil …), or fix their permissions`,
      { cause: err },
    );
  if (
    code === "LEVEL_LOCKED" ||
    cause?.code === "LEVEL_LOCKED" ||
    /lock file|Resource temporarily unavailable|lock hold by current process/.test(all)
  )
    return new StoreUnavailableError(
      "IO_ERROR",
      `${what} failed: the store is locked by another process (is the gateway running?)`,
      { cause: err },
    );
  // classic-level reports a damaged database at open as LEVEL_DATABASE_NOT_OPEN caused by LEVEL_CORRUPTION.
  if (code === "LEVEL_CORRUPTION" || cause?.code === "LEVEL_CORRUPTION")
    return new StoreUnavailableError("CORRUPTION", `${what} failed: database corruption`, { cause: err });
  if (code === "LEVEL_DATABASE_NOT_OPEN" || code === "LEVEL_DATABASE_NOT_CLOSED")
    return new StoreUnavailableError("RECOVERING", `${what} failed: database is not open`, { cause: err });
  return new StoreUnavailableError("IO_ERROR", `${what} failed: storage I/O error`, { cause: err });
}
