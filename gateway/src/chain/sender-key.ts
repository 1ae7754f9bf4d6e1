/**
 * Private keys of accounts that send transactions (the anchoring relayer, the deployer, site
 * operators), and the rules that keep them out of harm's way:
 *
 * - They come from a file or an environment variable, never from the command line (argv is visible
 *   to every user in `ps` and lands in shell history).
 * - A key file must not be accessible by group or others (mode 0600 or stricter), like the keystore
 *   and ssh private keys; it is refused otherwise with the chmod to run.
 * - The well-known development keys (anvil/hardhat's "test test … junk" accounts, published in every
 *   tutorial) are refused on any chain that is not a local development chain: chain id 31337 or
 *   1337 served from a loopback address. Anything else is a real network where those accounts are
 *   drained by bots within seconds and where a registry admin with a public key is no admin at all.
 */
import { statSync, readFileSync } from "node:fs";
import { computeAddress, SigningKey } from "ethers";
import { VigilError } from "../core/errors.ts";
import { notOwnerOnly } from "../core/secret-file.ts";
import { ANVIL_DEV_KEYS } from "./anvil.ts";

/** A sending key that is missing, unreadable, badly formed or not allowed here. */
export class SenderKeyError extends VigilError {
  override name = "SenderKeyError";
  declare readonly code: "KEY_FORMAT" | "KEY_MISSING" | "KEY_PERMISSIONS" | "DEV_KEY_REFUSED";
  constructor(code: "KEY_FORMAT" | "KEY_MISSING" | "KEY_PERMISSIONS" | "DEV_KEY_REFUSED", message: string) {
    super(code, message);
  }
}

/** Chain ids of local development chains (anvil/hardhat 31337, ganache/geth --dev 1337). */
export const LOCAL_DEV_CHAIN_IDS: readonly bigint[] = [31337n, 1337n];

const DEV_KEYS = new Set(ANVIL_DEV_KEYS.map((k) => k.toLowerCase()));

function normalise(key: string): string {
  const k = key.trim();
  return (k.startsWith("0x") ? k : `0x${k}`).toLowerCase();
}

/** True for the published development keys (anvil/hardhat accounts 0-9). */
export function isWellKnownDevKey(key: string): boolean {
  return DEV_KEYS.has(normalise(key));
}

function isLoopback(url: string): boolean {
  try {
    const h = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
  } catch {
    return false;
  }
}

/** A local development chain: chain id 31337 or 1337 and every RPC URL on a loopback address. */
export function isLocalDevChain(chainId: bigint, rpcUrls: readonly string[]): boolean {
  return LOCAL_DEV_CHAIN_IDS.includes(chainId) && rpcUrls.length > 0 && rpcUrls.every(isLoopback);
}

/**
 * Refuses a well-known development key on a chain that is not a local development chain.
 * @param what Names the key's source in the message (e.g. "chain.senderKeyFile").
 */
export function assertKeyAllowed(
  key: string,
  chainId: bigint,
  rpcUrls: readonly string[],
  what: string,
): void {
  if (isWellKnownDevKey(key) && !isLocalDevChain(chainId, rpcUrls))
    throw new SenderKeyError(
      "DEV_KEY_REFUSED",
      `${what} is a well-known development key (anvil/hardhat account ${computeAddress(normalise(key))}); refusing to use it on chain ${chainId}: use a key of your own`,
    );
}

/**
 * Reads a hex private key from a file that only its owner can access.
 * @throws SenderKeyError KEY_PERMISSIONS (with the chmod to run), KEY_MISSING, KEY_FORMAT.
 */
export function readKeyFile(path: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new SenderKeyError("KEY_MISSING", `${what}: ${path} cannot be read`);
  }
  const unsafe = notOwnerOnly(path, mode);
  if (unsafe) throw new SenderKeyError("KEY_PERMISSIONS", `${what}: ${unsafe}`);
  return parseKey(readFileSync(path, "utf8"), what);
}

/** Checks a hex private key (with or without 0x) and returns it 0x-prefixed. Never echoes the key. */
export function parseKey(text: string, what: string): string {
  const k = normalise(text.split(/\r?\n/)[0] ?? "");
  if (!/^0x[0-9a-f]{64}$/.test(k))
    throw new SenderKeyError("KEY_FORMAT", `${what} does not hold a 32-byte hex private key`);
  try {
    new SigningKey(k);
  } catch {
    throw new SenderKeyError("KEY_FORMAT", `${what} is not a valid secp256k1 private key`);
  }
  return k;
}

/**
 * The sending key from `file` (0600) or else the environment variable `envVar`; undefined when
 * neither is set.
 */
export function loadSenderKey(
  file: string | null | undefined,
  envVar: string,
  env: NodeJS.ProcessEnv = process.env,
  what = file ?? envVar,
): string | undefined {
  if (file) return readKeyFile(file, what);
  const v = env[envVar];
  return v ? parseKey(v, envVar) : undefined;
}
