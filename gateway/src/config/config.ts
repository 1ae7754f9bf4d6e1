/**
 * Gateway configuration: a JSON file validated against the one schema in config/schema.ts, which
 * also gives the type and the defaults (ajv `useDefaults`). Messages name the full path of the bad
 * setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import stripJsonComments from "strip-json-comments";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import cron from "node-cron";
import { ConfigError, redactUrl } from "../core/errors.ts";
import { parseDeviceIdHex } from "../protocol/frame.ts";
import { ConfigSchema, type GatewayConfig } from "./schema.ts";

/** Why updates cannot run: said at validation and, for what only start-up learns (the key), at start. */
export const UPDATES_NEED_CHAIN =
  "updates need chain.rpcUrl, chain.deployment and the gateway key (attest.enabled); set them or disable updates";

export type { GatewayConfig, SerialConfig } from "./schema.ts";
export { defaultGatewayName } from "./gateway-id.ts";

// useDefaults fills absent fields (nested objects default to {} and are then filled in turn).
// Compiled on first use: compiling costs more than the rest of `vigil <command> --help`.
let validate: ValidateFunction<GatewayConfig> | undefined;

/** Every default, read from the schema (test/config checks it equals what validation fills in). */
export const DEFAULT_CONFIG = defaultsOf(ConfigSchema) as GatewayConfig;

/** An object schema's defaults, built from its properties (an object's own `default: {}` is what ajv starts from). */
function defaultsOf(schema: { default?: unknown; properties?: Record<string, unknown> }): unknown {
  // A nullable object defaulting to null (mqtt.embedded.tls, registry.mosquittoExport) is null.
  if (!schema.properties || schema.default === null) return structuredClone(schema.default);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema.properties)) out[k] = defaultsOf(v as typeof schema);
  return out;
}

/** Shortest counter log interval, in ms, other than 0 (never): `log.statsIntervalMs`, `--stats-ms`. */
export const MIN_STATS_INTERVAL_MS = 100;

/**
 * Validates a partial config and fills the schema's defaults; the input is not modified.
 * Throws ConfigError naming the setting.
 */
export function resolveConfig(partial: unknown): GatewayConfig {
  const cfg: unknown = structuredClone(partial);
  validate ??= compile();
  if (!validate(cfg)) {
    const e = validate.errors?.[0];
    const path = (e?.instancePath ?? "").replace(/^\//, "").replaceAll("/", ".") || "(root)";
    throw new ConfigError(path, e ? describe(e) : "invalid");
  }
  // URLs must parse: a URL that does not would make a library throw later with the URL (and the
  // password in it) in the error; the message here carries it redacted.
  checkUrl("mqtt.url", cfg.mqtt.url);
  checkUrl("chain.rpcUrl", cfg.chain.rpcUrl);
  cfg.chain.rpcUrls.forEach((u, i) => checkUrl(`chain.rpcUrls.${i}`, u));
  checkUrl("updates.ipfsGateway", cfg.updates.ipfsGateway);
  const ipfs = cfg.updates.ipfsGateway === null ? undefined : new URL(cfg.updates.ipfsGateway);
  if (ipfs && ipfs.protocol !== "https:" && ipfs.protocol !== "http:")
    throw new ConfigError(
      "updates.ipfsGateway",
      `must be an http(s):// URL, got ${redactUrl(cfg.updates.ipfsGateway!)}`,
    );
  // Basic auth in clear text would hand the credentials to anyone on the path.
  if (ipfs && ipfs.protocol === "http:" && (ipfs.username !== "" || ipfs.password !== ""))
    throw new ConfigError("updates.ipfsGateway", "carries credentials over http://: use https://");
  if (cfg.chain.maxPriorityFeePerGasGwei > cfg.chain.maxFeePerGasGwei)
    throw new ConfigError("chain.maxPriorityFeePerGasGwei", "must not exceed chain.maxFeePerGasGwei");
  const stats = cfg.log.statsIntervalMs;
  if (stats > 0 && stats < MIN_STATS_INTERVAL_MS)
    throw new ConfigError(
      "log.statsIntervalMs",
      `must be 0 (never) or at least ${MIN_STATS_INTERVAL_MS}, so the log is not flooded; got ${stats}`,
    );
  checkAccessConfig(cfg);
  return cfg;
}

function compile(): ValidateFunction<GatewayConfig> {
  // verbose: errors carry the offending value (named in enum errors).
  const ajv = new Ajv({ allErrors: false, useDefaults: true, verbose: true });
  ajv.addKeyword("defaultDoc"); // how the README states a default computed per machine (schema.ts)
  return ajv.compile<GatewayConfig>(ConfigSchema);
}

/** ajv's message plus what it leaves out: the unknown key's name, the allowed values. */
function describe(e: ErrorObject): string {
  if (e.keyword === "additionalProperties")
    return `unknown setting "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") {
    const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String).join(", ");
    return `must be one of ${allowed}, got ${JSON.stringify(e.data)}`;
  }
  return e.message ?? "invalid";
}

function checkUrl(path: string, url: string | null): void {
  if (url === null) return;
  try {
    new URL(url);
  } catch {
    // No cause: Node's URL error carries the input, password included.
    throw new ConfigError(path, `is not a valid URL: ${redactUrl(url)}`);
  }
}

/**
 * The access settings that must hold together; resolveConfig checks them, and runtime.ts again
 * after command-line overrides (`--mqtt-host`). Throws ConfigError naming the setting.
 */
export function checkAccessConfig(cfg: GatewayConfig): void {
  const e = cfg.mqtt.embedded;
  // Security is default: nothing listens beyond loopback without authentication.
  if (e.enabled && e.auth === "none" && !e.insecure && !isLoopbackHost(e.host))
    throw new ConfigError(
      "mqtt.embedded.host",
      `"${e.host}" is beyond loopback but mqtt.embedded.auth is "none", so anyone on that network could publish frames and read alerts; set mqtt.embedded.auth to "registry" (or mqtt.embedded.insecure to true to accept that)`,
    );
  if (!cron.validate(cfg.registry.schedule))
    throw new ConfigError("registry.schedule", `"${cfg.registry.schedule}" is not a node-cron expression`);
  if (!cron.validate(cfg.updates.schedule))
    throw new ConfigError("updates.schedule", `"${cfg.updates.schedule}" is not a node-cron expression`);
  if (cfg.http.enabled && cfg.http.allowRemote && !cfg.http.authTokenFile)
    throw new ConfigError(
      "http.authTokenFile",
      "http.allowRemote needs an access token: nothing listens beyond loopback without authentication; set http.authTokenFile (a 0600 file with a token of 32+ characters)",
    );
  const usesRegistry = registryWatched(cfg);
  if (usesRegistry && (!cfg.chain.deployment || rpcUrlsOf(cfg.chain).length === 0)) {
    if (
      cfg.updates.enabled &&
      !cfg.registry.enabled &&
      cfg.ingest.admission !== "registry" &&
      e.auth !== "registry"
    )
      throw new ConfigError("updates.enabled", UPDATES_NEED_CHAIN);
    throw new ConfigError(
      cfg.ingest.admission === "registry"
        ? "ingest.admission"
        : e.auth === "registry"
          ? "mqtt.embedded.auth"
          : cfg.registry.mosquittoExport !== null && !cfg.registry.enabled
            ? "registry.mosquittoExport"
            : "registry.enabled",
      "the registry is read from the chain: set chain.deployment and chain.rpcUrl",
    );
  }
  // The update agents read chain.rpcUrl alone (not rpcUrls): refused here, not only at start.
  if (cfg.updates.enabled && !cfg.chain.rpcUrl) throw new ConfigError("updates.enabled", UPDATES_NEED_CHAIN);
  const x = cfg.registry.mosquittoExport;
  if (x?.dynsec && (!cfg.mqtt.url || !cfg.mqtt.username || cfg.mqtt.password === null || !x.gatewayUserLine))
    throw new ConfigError(
      "registry.mosquittoExport.dynsec",
      "the dynamic-security plugin is synced over MQTT as the gateway's own user: set mqtt.url, mqtt.username, mqtt.password and registry.mosquittoExport.gatewayUserLine (or dynsec: false to export only the password and ACL files)",
    );
}

/** Whether `host` names the loopback interface (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Whether the registry watch runs: when asked for, and when admission, broker auth, the update
 * agents (they follow release events the watch sees, issue 11) or the Mosquitto export need it.
 */
export function registryWatched(cfg: GatewayConfig): boolean {
  return (
    cfg.registry.enabled ||
    cfg.updates.enabled ||
    cfg.ingest.admission === "registry" ||
    cfg.mqtt.embedded.auth === "registry" ||
    // The export follows the watch's refreshes: without the watch it would never run.
    cfg.registry.mosquittoExport !== null
  );
}

/** All RPC endpoints of the chain config, in order of preference (chain.rpcUrl first). */
export function rpcUrlsOf(chain: GatewayConfig["chain"]): string[] {
  return [...(chain.rpcUrl ? [chain.rpcUrl] : []), ...chain.rpcUrls];
}

/** gwei (a config number) → wei, exact to the wei. */
export function gweiToWei(gwei: number): bigint {
  return decimalToUnits(gwei, 9);
}

/** ETH (a config number) → wei, exact to the wei. */
export function ethToWei(eth: number): bigint {
  return decimalToUnits(eth, 18);
}

function decimalToUnits(v: number, decimals: number): bigint {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`not a non-negative amount: ${v}`);
  // The shortest decimal form of the number ("0.1", not 0.1's binary expansion), unless exponential.
  const text = /e/i.test(String(v)) ? v.toFixed(decimals) : String(v);
  const [int, frac = ""] = text.split(".");
  return (
    BigInt(int!) * 10n ** BigInt(decimals) + BigInt(frac.padEnd(decimals, "0").slice(0, decimals) || "0")
  );
}

/**
 * Why a config file cannot be read, with the fix, by its errno code: a missing file and one the
 * service's user may not read (a 0600 file of root's, run as `vigil`) need different fixes.
 */
export function unreadableConfig(path: string, code: string | undefined): string {
  if (code === "ENOENT") return 'cannot read config file: it does not exist; create it with "vigil init"';
  if (code === "EISDIR") return "is a folder, not a config file; give the file's path";
  if (code === "EACCES" || code === "EPERM")
    return `cannot read config file (${code}: permission denied); run: ls -l ${path}, then let the user the gateway runs as read it (the Pi install makes it root:vigil, mode 0640)`;
  return `cannot read config file (${code ?? "error"})`;
}

/** Reads and validates a JSON config file. */
export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    // A byte-order mark (editors on Windows write one) is not JSON: dropped, not a syntax error.
    text = readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (e) {
    throw new ConfigError(path, unreadableConfig(path, (e as NodeJS.ErrnoException).code), { cause: e });
  }
  let doc: unknown;
  try {
    // Comments (// and /* */) are allowed: `vigil init` writes a commented file.
    doc = JSON.parse(stripJsonComments(text));
  } catch (e) {
    // No cause: V8's message quotes the text around the error, which may be a password.
    throw new ConfigError(path, `not valid JSON (${jsonProblem((e as Error).message, text)})`);
  }
  return resolveConfig(doc);
}

/**
 * JSON.parse's message without the stretch of text V8 quotes in it (it may hold a secret), and with
 * its "at position N" as a line and column (comments are stripped to whitespace, so positions hold).
 */
function jsonProblem(message: string, text: string): string {
  return message
    .replace(/, .*is not valid JSON$/s, "")
    .replace(/ at position (\d+)(?: \(line \d+ column \d+\))?$/, (_, p: string) => {
      const before = text.slice(0, Number(p));
      const line = before.split("\n").length;
      return ` at line ${line}, column ${Number(p) - before.lastIndexOf("\n")}`;
    });
}

export function deviceSet(ids: string[]): Set<number> {
  return new Set(ids.map((s) => parseDeviceIdHex(s)!));
}
