/**
 * RPC URL parsing without ethers (rpc.ts re-exports it): the CLI checks `--rpc` values with it at
 * start-up, before any command that talks to a chain is loaded.
 */
import { redactUrl } from "../core/errors.ts";
import { takeBasicAuth } from "../core/url-credentials.ts";
import { ChainError } from "./chain-error.ts";

/**
 * Parses an RPC URL. Throws ChainError `CHAIN_BAD_URL` (redacted, no cause) for anything that is not
 * an http(s) URL, so a typo never prints the credentials inside it.
 */
export function parseRpcUrl(url: string): { href: string; auth: string | undefined; shown: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ChainError("CHAIN_BAD_URL", `not a valid RPC URL: ${redactUrl(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new ChainError("CHAIN_BAD_URL", `RPC URL must be http:// or https://, got ${redactUrl(url)}`);
  const auth = takeBasicAuth(u);
  return { href: u.toString(), auth, shown: redactUrl(url) };
}
