/**
 * Encrypted keystore file for the gateway key (secp256k1 or P-256).
 *
 * Format `vigil-keystore/1` (JSON): scrypt (N, r, p, 32-byte salt) derives a 32-byte key;
 * AES-256-GCM (12-byte IV, 16-byte tag) encrypts the 32-byte private key; the header fields
 * (format, keyType, publicKey, kdf parameters) are the GCM additional data, so none of them
 * can be swapped without failing authentication. All crypto is node:crypto (OpenSSL).
 *
 * The file is written with mode 0600 and refused on load when group or others can read it
 * (`KeystorePermissionError`), like ssh refuses a world-readable private key. The passphrase
 * comes from `VIGIL_KEYSTORE_PASSPHRASE` or a file named by `VIGIL_KEYSTORE_PASSPHRASE_FILE`
 * (e.g. a systemd credential). Errors never contain the key or the passphrase.
 */
import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  scrypt as scryptCb,
  type ScryptOptions,
} from "node:crypto";
import { fstatSync, readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { writeFileAtomic } from "../core/atomic-file.ts";
import { VigilError } from "../core/errors.ts";
import { notOwnerOnly } from "../core/secret-file.ts";
import type { DeviceKey, KeyType } from "../chain/keys.ts";
import { importKey, registrationPublicKey } from "../chain/keys.ts";
import { GatewaySigner } from "./signer.ts";

export type KeystoreErrorCode =
  | "KEYSTORE_FORMAT"
  | "KEYSTORE_MISSING"
  | "KEYSTORE_PASSPHRASE"
  | "KEYSTORE_PERMISSIONS"
  | "KEYSTORE_DECRYPT"
  | "KEYSTORE_KDF";

export class KeystoreError extends VigilError {
  override name = "KeystoreError";
  declare readonly code: KeystoreErrorCode;
  constructor(code: KeystoreErrorCode, message: string, opts: { details?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

export class KeystorePermissionError extends KeystoreError {
  override name = "KeystorePermissionError";
  /** @param what the kind of file, default "keystore" (also "passphrase file"). */
  constructor(path: string, mode: number, what = "keystore") {
    super("KEYSTORE_PERMISSIONS", `${what} ${notOwnerOnly(path, mode) ?? path}`);
  }
}

export class KeystoreDecryptError extends KeystoreError {
  override name = "KeystoreDecryptError";
  constructor() {
    super("KEYSTORE_DECRYPT", "keystore could not be decrypted: wrong passphrase or the file was modified");
  }
}

export interface KeystoreFile {
  format: "vigil-keystore/1";
  keyType: KeyType;
  publicKey: string;
  kdf: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  cipher: { name: "aes-256-gcm"; iv: string; tag: string; ciphertext: string };
}

export interface KdfParams {
  /** scrypt cost; default 2^15 (≈ 0.1 s, 32 MiB here). Tests use 2^10. */
  N?: number;
  r?: number;
  p?: number;
}

function scrypt(pass: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  const opts: ScryptOptions = { N, r, p, maxmem: 256 * N * r + (1 << 20) };
  return new Promise((res, rej) =>
    scryptCb(pass.normalize("NFKC"), salt, 32, opts, (e, k) => (e ? rej(e) : res(k))),
  );
}

function aad(f: Pick<KeystoreFile, "format" | "keyType" | "publicKey" | "kdf">): Buffer {
  return Buffer.from(
    JSON.stringify([
      f.format,
      f.keyType,
      f.publicKey.toLowerCase(),
      f.kdf.name,
      f.kdf.N,
      f.kdf.r,
      f.kdf.p,
      f.kdf.salt,
    ]),
  );
}

function checkPassphrase(pass: string): void {
  if (typeof pass !== "string" || pass.length < 8)
    throw new KeystoreError("KEYSTORE_PASSPHRASE", "keystore passphrase must be at least 8 characters");
}

/** Encrypts `key` into the keystore format. */
export async function encryptKey(
  key: DeviceKey,
  passphrase: string,
  params: KdfParams = {},
): Promise<KeystoreFile> {
  checkPassphrase(passphrase);
  const k = importKey(key.type, key.privateKey);
  const kdf = {
    name: "scrypt" as const,
    N: params.N ?? 1 << 15,
    r: params.r ?? 8,
    p: params.p ?? 1,
    salt: randomBytes(32).toString("hex"),
  };
  checkKdf(kdf);
  const head = {
    format: "vigil-keystore/1" as const,
    keyType: k.type,
    publicKey: registrationPublicKey(k),
    kdf,
  };
  const dk = await scrypt(passphrase, Buffer.from(kdf.salt, "hex"), kdf.N, kdf.r, kdf.p);
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", dk, iv);
  c.setAAD(aad(head));
  const ct = Buffer.concat([c.update(k.privateKey), c.final()]);
  dk.fill(0);
  return {
    ...head,
    cipher: {
      name: "aes-256-gcm",
      iv: iv.toString("hex"),
      tag: c.getAuthTag().toString("hex"),
      ciphertext: ct.toString("hex"),
    },
  };
}

/**
 * Bounds on the scrypt parameters a keystore may ask for. The parameters come from the file, so
 * without bounds a crafted keystore could make the loader allocate gigabytes or spin for hours
 * (scrypt memory is 128·N·r bytes, time ∝ N·r·p) — or accept a trivially weak N. N = 2^10…2^20
 * (power of two), r = 1…32, p = 1…16, and at most 256 MiB of scrypt memory.
 */
export const KDF_BOUNDS = {
  minLogN: 10,
  maxLogN: 20,
  maxR: 32,
  maxP: 16,
  maxMemBytes: 256 * 1024 * 1024,
} as const;

function checkKdf(kdf: KeystoreFile["kdf"]): void {
  const { N, r, p } = kdf;
  const bad = (why: string): never => {
    throw new KeystoreError("KEYSTORE_KDF", `keystore scrypt parameters out of bounds: ${why}`);
  };
  if (
    !Number.isSafeInteger(N) ||
    N < 2 ** KDF_BOUNDS.minLogN ||
    N > 2 ** KDF_BOUNDS.maxLogN ||
    (N & (N - 1)) !== 0
  )
    bad(`N must be a power of two from 2^${KDF_BOUNDS.minLogN} to 2^${KDF_BOUNDS.maxLogN}, is ${String(N)}`);
  if (!Number.isSafeInteger(r) || r < 1 || r > KDF_BOUNDS.maxR)
    bad(`r must be 1..${KDF_BOUNDS.maxR}, is ${String(r)}`);
  if (!Number.isSafeInteger(p) || p < 1 || p > KDF_BOUNDS.maxP)
    bad(`p must be 1..${KDF_BOUNDS.maxP}, is ${String(p)}`);
  if (128 * N * r > KDF_BOUNDS.maxMemBytes)
    bad(`128·N·r = ${128 * N * r} bytes is above ${KDF_BOUNDS.maxMemBytes}`);
  if (typeof kdf.salt !== "string" || !/^[0-9a-f]{32,128}$/i.test(kdf.salt))
    bad("salt must be 16 to 64 bytes of hex");
}

/** Decrypts a keystore object; KeystoreDecryptError on a wrong passphrase or any modification. */
export async function decryptKey(f: KeystoreFile, passphrase: string): Promise<GatewaySigner> {
  if (f?.format !== "vigil-keystore/1" || f.kdf?.name !== "scrypt" || f.cipher?.name !== "aes-256-gcm")
    throw new KeystoreError("KEYSTORE_FORMAT", "not a vigil-keystore/1 file");
  if (f.keyType !== "secp256k1" && f.keyType !== "p256")
    throw new KeystoreError("KEYSTORE_FORMAT", "keystore keyType must be secp256k1 or p256");
  checkKdf(f.kdf);
  let pk: Buffer;
  try {
    const dk = await scrypt(passphrase, Buffer.from(f.kdf.salt, "hex"), f.kdf.N, f.kdf.r, f.kdf.p);
    const d = createDecipheriv("aes-256-gcm", dk, Buffer.from(f.cipher.iv, "hex"));
    d.setAAD(aad(f));
    d.setAuthTag(Buffer.from(f.cipher.tag, "hex"));
    pk = Buffer.concat([d.update(Buffer.from(f.cipher.ciphertext, "hex")), d.final()]);
    dk.fill(0);
  } catch {
    // Deliberately no cause: OpenSSL's message is harmless, but nothing from this step leaves.
    throw new KeystoreDecryptError();
  }
  try {
    const signer = new GatewaySigner({ type: f.keyType, privateKey: new Uint8Array(pk) });
    if (signer.publicKey.toLowerCase() !== f.publicKey.toLowerCase()) throw new KeystoreDecryptError();
    return signer;
  } catch {
    throw new KeystoreDecryptError();
  } finally {
    pk.fill(0);
  }
}

/** Writes a new keystore file with mode 0600 (atomically: temp file + rename). */
export async function writeKeystore(
  path: string,
  key: DeviceKey,
  passphrase: string,
  params: KdfParams = {},
): Promise<KeystoreFile> {
  const f = await encryptKey(key, passphrase, params);
  await writeFileAtomic(path, JSON.stringify(f, null, 2) + "\n", { mode: 0o600 });
  return f;
}

/** Loads and decrypts a keystore file after checking it is not readable by group/others. */
export async function loadKeystore(path: string, passphrase: string): Promise<GatewaySigner> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? "stat error"})`;
    throw new KeystoreError("KEYSTORE_MISSING", `keystore ${path} ${why}`, { cause: e });
  }
  if ((st.mode & 0o077) !== 0) throw new KeystorePermissionError(path, st.mode);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    // EACCES (another user's file) or EISDIR: a read problem, not a format one.
    const why = (e as NodeJS.ErrnoException).code ?? "read error";
    throw new KeystoreError("KEYSTORE_MISSING", `keystore ${path} cannot be read (${why})`, { cause: e });
  }
  let f: KeystoreFile;
  try {
    f = JSON.parse(text) as KeystoreFile;
  } catch {
    throw new KeystoreError("KEYSTORE_FORMAT", `keystore ${path} is not valid JSON`);
  }
  return decryptKey(f, passphrase);
}

/** Standard input's text, read once per process (`VIGIL_KEYSTORE_PASSPHRASE_FILE=-`). */
let stdinText: string | undefined;

/**
 * The keystore passphrase from the environment: `VIGIL_KEYSTORE_PASSPHRASE`, or the first
 * line of the file named by `VIGIL_KEYSTORE_PASSPHRASE_FILE` (which must be mode 0600 too).
 * `-` or `/dev/stdin` reads standard input, through the descriptor the process was given
 * (re-opening `/dev/stdin` by path fails for another user's pipe): so a service user can be
 * handed a root-only passphrase file, `sudo cat FILE | sudo -u vigil env
 * VIGIL_KEYSTORE_PASSPHRASE_FILE=- vigil doctor …`.
 */
export async function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = env.VIGIL_KEYSTORE_PASSPHRASE_FILE;
  if (file) {
    const stdin = file === "-" || file === "/dev/stdin";
    const what = stdin ? "standard input" : `passphrase file ${file}`;
    const cannot = (e: unknown): never => {
      const why = (e as NodeJS.ErrnoException).code ?? "read error";
      throw new KeystoreError("KEYSTORE_PASSPHRASE", `${what} cannot be read (${why})`, { cause: e });
    };
    let text: string;
    try {
      // Files (also one redirected to standard input) must be 0600; a pipe or socket on standard
      // input is this process's own, reachable by no one else.
      const st = stdin ? fstatSync(0) : await stat(file);
      if (stdin && st.isFile() && (st.mode & 0o077) !== 0)
        // The file's name is not known here: "chmod 600 -" would be no fix.
        throw new KeystoreError(
          "KEYSTORE_PERMISSIONS",
          `standard input is a file accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); chmod 600 the file you redirect, or pipe it (sudo cat FILE | …)`,
        );
      if (!stdin && (st.mode & 0o077) !== 0)
        throw new KeystorePermissionError(file, st.mode, "passphrase file");
      // Standard input is read to its end once (start and doctor ask more than once).
      text = stdin ? (stdinText ??= readFileSync(0, "utf8")) : await readFile(file, "utf8");
    } catch (e) {
      if (e instanceof KeystoreError) throw e;
      return cannot(e);
    }
    const passphrase = text.split(/\r?\n/)[0] ?? "";
    // An empty first line (nothing piped, an empty file) is no passphrase: said so, not tried as
    // one ("wrong passphrase or the file was modified").
    if (passphrase === "")
      throw new KeystoreError(
        "KEYSTORE_PASSPHRASE",
        `${what} holds no passphrase (its first line is empty)${stdin ? "; pipe or redirect the passphrase file to it" : ""}`,
      );
    return passphrase;
  }
  const p = env.VIGIL_KEYSTORE_PASSPHRASE;
  if (p) return p;
  throw new KeystoreError(
    "KEYSTORE_PASSPHRASE",
    "set VIGIL_KEYSTORE_PASSPHRASE or VIGIL_KEYSTORE_PASSPHRASE_FILE to unlock the gateway key",
  );
}
