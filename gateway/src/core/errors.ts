/**
 * The one error base class of Vigil. Every error the gateway raises or translates from a
 * third-party library (serialport, level, ethers, mqtt) is a `VigilError` with:
 * - `code`: a stable machine-readable reason (also the label of the rejection counter),
 * - `shortMessage`: one line for humans, never containing secrets,
 * - `details`: optional extra context (already redacted),
 * - `cause`: the original error, when one was translated.
 *
 * Policy: whatever comes from outside the program (device bytes, MQTT payloads, config, files,
 * keys, the chain, command-line arguments) fails with a `VigilError` subclass, translated at the
 * boundary. `RangeError`/`TypeError` are kept for programmer errors only: a caller breaking an
 * API's documented contract (an option out of its range after config validation, a method called
 * twice), which no input can trigger. Subclasses narrow `code` to their union of reasons.
 */
export class VigilError extends Error {
  override name = "VigilError";
  readonly code: string;
  readonly shortMessage: string;
  readonly details: string | undefined;

  constructor(code: string, shortMessage: string, opts: { details?: string; cause?: unknown } = {}) {
    const msg = opts.details ? `${shortMessage}\n\nDetails: ${opts.details}` : shortMessage;
    super(msg, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = opts.details;
  }

  /**
   * Follows the `cause` chain from this error: returns the first error for which `match` is true
   * (this one included), or, without `match`, the innermost cause. Undefined when nothing matches.
   * E.g. `e.walk((c) => c instanceof ContractRevertError)` finds a revert under a retry wrapper.
   */
  walk(match?: (e: unknown) => boolean): unknown {
    return walkCauses(this, match);
  }
}

/** {@link VigilError.walk} for any thrown value (third-party errors included); stops at cycles. */
export function walkCauses(err: unknown, match?: (e: unknown) => boolean): unknown {
  const seen = new Set<unknown>();
  let e: unknown = err;
  let last: unknown = err;
  while (e !== undefined && e !== null && !seen.has(e)) {
    seen.add(e);
    if (match?.(e)) return e;
    last = e;
    e = (e as { cause?: unknown }).cause;
  }
  return match ? undefined : last;
}

/**
 * An invariant of the program or of its installation does not hold (a file the package ships is
 * missing, an ABI lacks an event): a bug or a broken install, never a user's input.
 */
export class InternalError extends VigilError {
  override name = "InternalError";
  declare readonly code: "INTERNAL";
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("INTERNAL", message, opts);
  }
}

/** Configuration is invalid; `path` names the setting, e.g. `mqtt.port`. */
export class ConfigError extends VigilError {
  override name = "ConfigError";
  readonly path: string;
  constructor(path: string, message: string, opts: { cause?: unknown } = {}) {
    super("BAD_CONFIG", `${path}: ${message}`, opts);
    this.path = path;
  }
}

/** A command-line usage error: unknown flag, missing argument. */
export class UsageError extends VigilError {
  override name = "UsageError";
  constructor(message: string) {
    super("USAGE", message);
  }
}

/** Node's file-system error codes in words, for one-sentence messages. */
const ERRNO_WORDS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or folder",
  ENOTDIR: "a part of the path is not a folder",
  EISDIR: "it is a folder",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EEXIST: "it already exists",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the name is too long",
};

/**
 * A file or folder could not be read, written or created (the translation of Node's errno errors
 * at the edge of a command: `code` FILE_ACCESS, `errno` the system code, e.g. EACCES).
 */
export class FileAccessError extends VigilError {
  override name = "FileAccessError";
  readonly errno: string;
  readonly path: string;
  constructor(errno: string, path: string, message: string, opts: { cause?: unknown } = {}) {
    super("FILE_ACCESS", message, opts);
    this.errno = errno;
    this.path = path;
  }
}

/**
 * Translates a Node file-system error (one with a known `code` and a `path`) into a
 * FileAccessError: "cannot mkdir /var/lib/vigil/store: permission denied (EACCES)". Undefined for
 * anything else. `what` overrides the verb (default: the failing system call).
 */
export function fileError(e: unknown, what?: string): FileAccessError | undefined {
  if (e instanceof FileAccessError) return e;
  const x = e as { code?: unknown; path?: unknown; syscall?: unknown } | null;
  if (!x || typeof x.code !== "string" || typeof x.path !== "string") return undefined;
  let words = ERRNO_WORDS[x.code];
  if (!words) return undefined;
  // mkdir -p reports EEXIST when a file (not a folder) holds one of the path's names
  if (x.code === "EEXIST" && x.syscall === "mkdir") words = "a file of that name is in the way";
  const verb = what ?? (typeof x.syscall === "string" ? x.syscall : "access");
  return new FileAccessError(x.code, x.path, `cannot ${verb} ${x.path}: ${words} (${x.code})`, { cause: e });
}

/**
 * A path segment shown as it is: a lowercase word (letters, `.`, `_`, `-`) of at most 24
 * characters, a version (`v2`) or a number of at most 6 digits. Every other segment may be a key
 * (keys mix case, carry digits or are long) and is replaced, and so is the segment after a version
 * (`/v2/<key>`), whatever its shape.
 */
const PLAIN_SEGMENT = /^(?:[a-z][a-z._-]{0,23}|v\d{1,3}|\d{1,6})$/;
const VERSION_SEGMENT = /^v\d{1,3}$/;
/** A host name label that may be a key: 16+ characters with a digit, or 32+ characters. */
const KEY_LABEL = /^(?:(?=[^.]*\d)[A-Za-z0-9_-]{16,}|[A-Za-z0-9_-]{32,})$/;

function redactPath(path: string): string {
  const parts = path.split("/");
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i]!;
    if (seg === "") continue;
    if (!PLAIN_SEGMENT.test(seg) || (i > 0 && VERSION_SEGMENT.test(parts[i - 1]!))) parts[i] = "***";
  }
  return parts.join("/");
}

/** `host[:port]` with every key-like label replaced (IP literals are kept). */
function redactHost(host: string): string {
  if (host.startsWith("[")) return host;
  const colon = host.lastIndexOf(":");
  const name = colon < 0 ? host : host.slice(0, colon);
  // A parsed URL's port is digits; in text that did not parse, "host:S3cret" may hold a key.
  const raw = colon < 0 ? "" : host.slice(colon);
  const port = /^(?::\d*)?$/.test(raw) ? raw : ":***";
  return (
    name
      .split(".")
      .map((l) => (KEY_LABEL.test(l) ? "***" : l))
      .join(".") + port
  );
}

/**
 * Every query value replaced (names kept): no rule on names (`apikey`, `access`, `k`) finds them
 * all; and a part without `=` (`?S3cretKey`: the key itself) replaced whole.
 */
function redactQuery(query: string): string {
  return query.replace(/([?&])([^=&#]*)(=[^&#]*)?/g, (m, sep: string, name: string, value?: string) =>
    value !== undefined ? `${sep}${name}=***` : name === "" ? m : `${sep}***`,
  );
}

/**
 * Removes credentials from a URL before it is logged or put in an error. Providers put keys in
 * many places, so the rule is to keep only what cannot be one:
 * - `user:password@` becomes `***:***@`; the fragment is dropped;
 * - every query value becomes `***` (names are kept), and a query part without `=` becomes `***`;
 * - a path segment is kept only if it is a lowercase word of at most 24 characters (`rpc`,
 *   `optimism`), a version (`v2`) or a number of at most 6 digits, and never right after a version
 *   (`/v2/<key>`); others become `***`;
 * - a host name label of 16+ characters with a digit, or of 32+ characters, becomes `***`.
 *
 * A string that does not parse as a URL (`mqtt://u:pw@[::1`, a bad port) is redacted as text the
 * same way and marked `(unparseable)`: everything between `scheme://` and the last `@` becomes
 * `***@` (a password may hold an unencoded `/`, `?` or `#`), and a port that is not digits `***`.
 * So does a URL that parses with an `@` outside its userinfo. The input never comes back
 * unredacted.
 * @param url Any string meant to be a URL.
 * @returns The URL with every secret replaced by `***`.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${redactUnparseable(String(url))} (unparseable)`;
  }
  // An opaque "URL" such as `user:pw@host` (scheme "user:") has no authority to clean up.
  if (!u.host && u.pathname.includes("@"))
    return `***@${redactUnparseable(url.slice(url.lastIndexOf("@") + 1))}`;
  // An @ the parser did not read as the end of a userinfo (`https://alice:12#pw@host`: host
  // "alice", port 12, the rest a fragment) may follow a password with an unencoded # / or ?:
  // everything before the last @ is redacted, as for text that does not parse.
  if (!u.username && !u.password && /^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\/.*@/s.test(url))
    return redactUnparseable(url);
  // Built by hand: the URL setters refuse `***` in a host name.
  const userinfo = u.username || u.password ? `${u.username ? "***" : ""}${u.password ? ":***" : ""}@` : "";
  const authority = /^\s*[^:]+:\/\//.test(url) ? `//${userinfo}${redactHost(u.host)}` : "";
  // The parser adds "/" as the path of `https://host`; the text keeps the URL as it was written.
  const path = u.pathname === "/" && !/^\s*[^:]+:\/\/[^/?#]*\//.test(url) ? "" : redactPath(u.pathname);
  return `${u.protocol}${authority}${path}${redactQuery(u.search)}`;
}

/** Textual redaction for strings that are not parseable URLs (same rules, no URL parser). */
function redactUnparseable(s: string): string {
  // scheme://userinfo@rest → scheme://***@rest. The userinfo ends at the LAST @ of the whole
  // string, not the first / ? or #: a password may hold those unencoded (the reason the URL did
  // not parse), and a path with an @ in it loses a little more than it had to, never a secret.
  let out = s.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*@)/s, (_m, scheme: string) => `${scheme}***@`);
  // No scheme but something@host: treat what precedes the last @ as credentials.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(out)) out = out.replace(/^.*@/s, "***@");
  out = out.replace(/#.*$/, "");
  const q = out.indexOf("?");
  const head = q < 0 ? out : out.slice(0, q);
  const authority = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/(?:\*\*\*@)?)([^/]*)/.exec(head);
  const scheme = authority ? `${authority[1]}${redactHost(authority[2]!)}` : "";
  const path = redactPath(head.slice(authority?.[0].length ?? 0));
  return `${scheme}${path}${redactQuery(q < 0 ? "" : out.slice(q))}`;
}

/**
 * A URL inside free text: a scheme and `://`, up to white space, a control character, a quote,
 * `\\`, `<` or `>`.
 */
// eslint-disable-next-line no-control-regex -- a URL ends at a control character (ANSI colours in pretty logs)
const URL_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'\\<>\x00-\x1f\x7f]+/g;

/** `text` with every URL in it passed through {@link redactUrl} (without the `(unparseable)` mark). */
export function redactText(text: string): string {
  if (!text.includes("://")) return text;
  return text.replace(URL_IN_TEXT, (u) => redactUrl(u).replace(/ \(unparseable\)$/, ""));
}

/**
 * A copy of a third-party error that is safe to keep as a `cause`: name, message and stack with
 * every URL redacted ({@link redactText}), a string `code` kept, and its own causes copied the same
 * way (four deep). Nothing else is copied: ethers' errors, for one, carry the request URL with its
 * API key in `info`, `request` and their message, and a logger prints a cause's message and stack.
 */
export function redactedError(err: unknown, depth = 4): Error {
  const src = err instanceof Error ? err : new Error(String(err));
  const copy = new Error(redactText(src.message));
  copy.name = src.name;
  copy.stack = redactText(src.stack ?? copy.stack ?? "");
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") Object.assign(copy, { code });
  if (src.cause !== undefined && src.cause !== err && depth > 1)
    copy.cause = redactedError(src.cause, depth - 1);
  return copy;
}
