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

/** Query parameter names whose values are secrets (`?apikey=`, `?token=`, `?access_key=` …). */
const SECRET_PARAM = /key|token|secret|pass|auth|sig|cred|session|jwt/i;
/** A path segment that looks like an API key: 20+ URL-safe characters with a digit (40-hex keys, …). */
const KEY_SEGMENT = /^(?=[^/]*\d)[A-Za-z0-9_-]{20,}$/;
/** A version segment (`v2`, `v3`) after which providers put the key (`/v2/<key>`). */
const VERSION_SEGMENT = /^v\d+$/i;

function redactPath(path: string): string {
  const parts = path.split("/");
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i]!;
    if (seg === "") continue;
    if (KEY_SEGMENT.test(seg) || (i > 0 && VERSION_SEGMENT.test(parts[i - 1]!))) parts[i] = "***";
  }
  return parts.join("/");
}

/**
 * Removes credentials from a URL before it is logged or put in an error, in every form RPC and
 * broker providers use: `user:password@`, an API key as a path segment (`/<40 hex>/`, with or
 * without a trailing slash), `/v2/<key>`, secret query parameters (`?apikey=`, `?token=`) and the
 * fragment. A string that does not parse as a URL (`mqtt://u:pw@[::1`, a bad port) is redacted as
 * text the same way and marked `(unparseable)`: the input never comes back unredacted.
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
  if (!u.host && u.pathname.includes("@")) return `***@${url.slice(url.lastIndexOf("@") + 1)}`;
  if (u.username) u.username = "***";
  if (u.password) u.password = "***";
  for (const k of [...u.searchParams.keys()]) {
    const v = u.searchParams.get(k) ?? "";
    if (SECRET_PARAM.test(k) || KEY_SEGMENT.test(v)) u.searchParams.set(k, "***");
  }
  u.hash = "";
  u.pathname = redactPath(u.pathname);
  return u.toString();
}

/** Textual redaction for strings that are not parseable URLs (same rules, no URL parser). */
function redactUnparseable(s: string): string {
  // scheme://userinfo@rest → scheme://***@rest (userinfo ends at the LAST @ before the path).
  let out = s.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*@)/, (_m, scheme: string) => `${scheme}***@`);
  // No scheme but something@host: treat what precedes @ as credentials.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(out)) out = out.replace(/^[^/?#]*@/, "***@");
  const q = out.search(/[?#]/);
  const head = q < 0 ? out : out.slice(0, q);
  const query = q < 0 ? "" : out.slice(q).replace(/#.*$/, "");
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(head)?.[0] ?? "";
  const path = redactPath(head.slice(scheme.length));
  const params = query.replace(/([?&])([^=&]*)=([^&]*)/g, (m, sep: string, k: string, v: string) =>
    SECRET_PARAM.test(k) || KEY_SEGMENT.test(v) ? `${sep}${k}=***` : m,
  );
  return `${scheme}${path}${params}`;
}
