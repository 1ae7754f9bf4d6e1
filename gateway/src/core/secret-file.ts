/**
 * Secrets kept in files (the HTTP access token): readable by their owner only, never echoed.
 */
import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "./errors.ts";

/**
 * Why a secret file's `mode` is unsafe ("`path` is accessible by group or others (mode 0644);
 * run: chmod 600 `path`"), or undefined when only its owner can access it. One sentence for every
 * secret file: keystore, key files, the access token.
 */
export function notOwnerOnly(path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  return `${path} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); run: chmod 600 ${path}`;
}

/**
 * The first line of `path`, trimmed: a secret that only the file's owner may read.
 * @param setting The config setting that names the file (in errors), e.g. `http.authTokenFile`.
 * @param minLength Shortest accepted secret. Default 32.
 * @throws ConfigError naming `setting`: unreadable, readable by group or others (with the chmod to
 *   run), or shorter than `minLength`. The secret never appears in a message.
 */
export function readSecretFile(path: string, setting: string, minLength = 32): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(
      setting,
      `${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const unsafe = notOwnerOnly(path, mode);
  if (unsafe) throw new ConfigError(setting, unsafe);
  const secret = (text.split(/\r?\n/)[0] ?? "").trim();
  if (secret.length < minLength)
    throw new ConfigError(
      setting,
      `${path} must hold a secret of at least ${minLength} characters on its first line`,
    );
  return secret;
}
