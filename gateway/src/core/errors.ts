/**
 * The one error base class of Vigil. Every error the gateway raises or translates from a
 * third-party library (serialport, level, ethers, mqtt) is a `VigilError` with:
 * - `code`: a stable machine-readable reason (also the label of the rejection counter),
 * - `shortMessage`: one line for humans, never containing secrets,
 * - `details`: optional extra context (already redacted),
 * - `cause`: the original error, when one was translated.
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

/** Removes credentials and query secrets from a URL before it is logged or put in an error. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = "***";
    if (u.password) u.password = "***";
    for (const k of [...u.searchParams.keys()]) {
      if (/key|token|secret|pass|auth/i.test(k)) u.searchParams.set(k, "***");
    }
    // Common RPC-provider style: the API key is the last path segment (…/v2/<key>).
    u.pathname = u.pathname.replace(/\/([A-Za-z0-9_-]{24,})$/, "/***");
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
