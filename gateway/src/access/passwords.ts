/**
 * Device credentials in Mosquitto's password-file format (mosquitto_passwd 2.x, `$7$`):
 * `username:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64)>`.
 * The same file serves the embedded broker and an external Mosquitto (export.ts), so a device
 * provisioned once works on both. Only the hash is stored; the secret is shown once at provisioning.
 */
import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../core/errors.ts";

/** mosquitto_passwd's default (src/password_mosq.h PW_DEFAULT_ITERATIONS). */
export const DEFAULT_ITERATIONS = 101;
const SALT_BYTES = 12;
/** PBKDF2-HMAC-SHA512's output, the only hash length mosquitto_passwd writes. */
const HASH_BYTES = 64;
/**
 * Most iterations a line may ask for: each login runs PBKDF2 on the gateway's event loop (101
 * iterations take ~0.2 ms on a Pi 4), so a file asking millions would stall ingest per login.
 */
export const MAX_ITERATIONS = 100_000;

/** One password-file line for `username` and `secret` (fresh random salt). */
export function hashPassword(username: string, secret: string, iterations = DEFAULT_ITERATIONS): string {
  if (username.includes(":") || /\s/.test(username))
    throw new RangeError("username must not contain ':' or spaces");
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(secret, salt, iterations, 64, "sha512");
  return `${username}:$7$${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

interface Entry {
  /** The line as it is in the file (trimmed). */
  line: string;
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

/** Usernames → hashes, parsed from password-file text. Lines in other formats are refused. */
export class PasswordFile {
  readonly #m = new Map<string, Entry>();

  constructor(text = "") {
    text.split("\n").forEach((raw, i) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const m = /^([^:\s]+):\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new RangeError(`line ${i + 1}: not a mosquitto_passwd $7$ entry`);
      const iterations = Number(m[2]);
      const salt = Buffer.from(m[3]!, "base64");
      const hash = Buffer.from(m[4]!, "base64");
      // An empty hash would match any password (a zero-length PBKDF2 equals it): refused, as are
      // a salt that decodes to nothing and iterations PBKDF2 refuses or that would stall logins.
      if (hash.length !== HASH_BYTES)
        throw new RangeError(`line ${i + 1}: the hash is ${hash.length} bytes, not ${HASH_BYTES}`);
      if (salt.length === 0) throw new RangeError(`line ${i + 1}: the salt is empty`);
      if (iterations < 1 || iterations > MAX_ITERATIONS)
        throw new RangeError(`line ${i + 1}: iterations must be 1 to ${MAX_ITERATIONS}, got ${m[2]}`);
      this.#m.set(m[1]!, { line, iterations, salt, hash });
    });
  }

  /** Reads a password file; errors name the setting. */
  static load(path: string, setting = "mqtt.embedded.passwordFile"): PasswordFile {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new ConfigError(
        setting,
        `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`,
        { cause: e },
      );
    }
    try {
      return new PasswordFile(text);
    } catch (e) {
      throw new ConfigError(setting, `${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  has(username: string): boolean {
    return this.#m.has(username);
  }

  /** The file's line for `username` (trimmed), or undefined. */
  line(username: string): string | undefined {
    return this.#m.get(username)?.line;
  }

  get size(): number {
    return this.#m.size;
  }

  /** Whether `secret` is the password of `username` (constant time in the hash comparison). */
  verify(username: string, secret: Buffer | string): boolean {
    const e = this.#m.get(username);
    if (!e) return false;
    const h = pbkdf2Sync(secret, e.salt, e.iterations, e.hash.length, "sha512");
    return timingSafeEqual(h, e.hash);
  }
}
