/**
 * Gateway configuration: a JSON file validated against the one schema in config/schema.ts, which
 * also gives the type and the defaults (ajv `useDefaults`). Messages name the full path of the bad
 * setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { isIPv4 } from "node:net";
import stripJsonComments from "strip-json-comments";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import cron from "node-cron";
import { editDistance } from "../core/edit-distance.ts";
import { FETCH_BLOCKED_PORTS } from "../core/blocked-ports.ts";
import { ConfigError, redactUrl } from "../core/errors.ts";
import { parseDeviceIdHex } from "../protocol/frame.ts";
import { ConfigSchema, type GatewayConfig } from "./schema.ts";

/** Why updates cannot run: said at validation and, for what only start-up learns (the key), at start. */
export const UPDATES_NEED_CHAIN =
  "updates need chain.rpcUrl or chain.rpcUrls, chain.deployment and the gateway key (attest.enabled); set them or disable updates";

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

/** Largest config file read: a bigger one (or /dev/zero) would stall the start for minutes. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

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
  checkStrings(cfg, "");
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
  if (FETCH_BLOCKED_PORTS.has(cfg.http.port))
    throw new ConfigError(
      "http.port",
      `${cfg.http.port} is a port browsers and fetch refuse (the Fetch standard's blocked ports): the live page and vigil status could not reach it; choose another (the default is 9479)`,
    );
  if (cfg.chain.maxPriorityFeePerGasGwei > cfg.chain.maxFeePerGasGwei)
    throw new ConfigError("chain.maxPriorityFeePerGasGwei", "must not exceed chain.maxFeePerGasGwei");
  const stats = cfg.log.statsIntervalMs;
  if (stats > 0 && stats < MIN_STATS_INTERVAL_MS)
    throw new ConfigError(
      "log.statsIntervalMs",
      `must be 0 (never) or at least ${MIN_STATS_INTERVAL_MS}, so the log is not flooded; got ${stats}`,
    );
  // A cap that rounds to 0 wei would pause anchoring for ever.
  if (gweiToWei(cfg.chain.maxFeePerGasGwei) === 0n)
    throw new ConfigError("chain.maxFeePerGasGwei", "must be at least 0.000000001 (1 wei)");
  if (cfg.chain.maxSpendPerDayEth !== null && ethToWei(cfg.chain.maxSpendPerDayEth) === 0n)
    throw new ConfigError("chain.maxSpendPerDayEth", "must be at least 1e-18 (1 wei), or null for no cap");
  checkHosts(cfg);
  checkListeners(cfg);
  const seen = new Map<string, number>();
  cfg.serial.forEach((s, i) => {
    const j = seen.get(s.path);
    if (j !== undefined)
      throw new ConfigError(
        `serial.${i}.path`,
        `"${s.path}" is also serial.${j}.path: a port can be read by one source only; remove one`,
      );
    seen.set(s.path, i);
  });
  checkAccessConfig(cfg);
  return cfg;
}

/** Settings whose text is a credential: never quoted, and kept as written. */
const SECRET_SETTINGS = new Set(["mqtt.username", "mqtt.password"]);

/**
 * Every string setting but a credential: no control character (a NUL makes Node's fs throw a
 * TypeError, a newline splits the log) and no white space at either end (`" "` as dataDir made a
 * folder named by a space). The value is not quoted: it may be a URL with a key in it.
 */
function checkStrings(v: unknown, path: string): void {
  if (typeof v === "string") {
    if (SECRET_SETTINGS.has(path)) return;
    // eslint-disable-next-line no-control-regex -- control characters are what is refused
    if (/[\x00-\x1f\x7f]/.test(v))
      throw new ConfigError(path, "contains a control character (NUL, tab, newline, …); remove it");
    if (v.trim() !== v) throw new ConfigError(path, "begins or ends with white space; remove it");
  } else if (Array.isArray(v)) v.forEach((x, i) => checkStrings(x, `${path}.${i}`));
  else if (v !== null && typeof v === "object")
    for (const [k, x] of Object.entries(v)) checkStrings(x, path ? `${path}.${k}` : k);
}

/** A host of digits and dots is an IPv4 address, or listening fails late with ENOTFOUND. */
function checkHosts(cfg: GatewayConfig): void {
  for (const [path, host] of [
    ["mqtt.embedded.host", cfg.mqtt.embedded.host],
    ["http.host", cfg.http.host],
  ] as const)
    if (/^[\d.]+$/.test(host) && !isIPv4(host))
      throw new ConfigError(path, `"${host}" is not an IPv4 address (four numbers 0-255, e.g. 127.0.0.1)`);
}

/** Whether listeners on these hosts clash on one port: the same host, a wildcard, or localhost and a loopback address. */
function sameInterface(a: string, b: string): boolean {
  const any = (h: string) => h === "0.0.0.0" || h === "::" || h === "";
  const local = (h: string) => h === "localhost" || isLoopbackHost(h);
  return a === b || any(a) || any(b) || (local(a) && local(b) && (a === "localhost" || b === "localhost"));
}

/** Two listeners of this gateway on one port: the second would fail with EADDRINUSE, blamed on "another program". */
function checkListeners(cfg: GatewayConfig): void {
  const e = cfg.mqtt.embedded;
  const listeners: Array<[setting: string, host: string, port: number]> = [];
  if (e.enabled) {
    listeners.push(["mqtt.embedded.port", e.host, e.port]);
    if (e.tls) listeners.push(["mqtt.embedded.tls.port", e.host, e.tls.port]);
    if (e.websocket) listeners.push(["mqtt.embedded.websocket.port", e.host, e.websocket.port]);
  }
  if (cfg.http.enabled) listeners.push(["http.port", cfg.http.host, cfg.http.port]);
  listeners.forEach(([setting, host, port], i) => {
    if (port === 0) return; // any free port
    const other = listeners.slice(0, i).find(([, h, p]) => p === port && sameInterface(h, host));
    if (other)
      throw new ConfigError(
        setting,
        `${port} is also ${other[0]}: two listeners of the gateway cannot share a port; choose another (0 picks a free one)`,
      );
  });
}

function compile(): ValidateFunction<GatewayConfig> {
  // verbose: errors carry the offending value (named in enum errors).
  const ajv = new Ajv({ allErrors: false, useDefaults: true, verbose: true });
  ajv.addKeyword("defaultDoc"); // how the README states a default computed per machine (schema.ts)
  return ajv.compile<GatewayConfig>(ConfigSchema);
}

/** ajv's message plus what it leaves out: the unknown key's name, the allowed values. */
function describe(e: ErrorObject): string {
  if (e.keyword === "additionalProperties") {
    const key = (e.params as { additionalProperty: string }).additionalProperty;
    const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
    const near = known.find((k) => editDistance(key.toLowerCase(), k.toLowerCase()) <= 2);
    // Without a near one it may be a newer version's setting (a config kept across a rollback).
    return `unknown setting "${key}"${near ? ` (did you mean "${near}"?)` : " (not one of this version's: misspelt, or a newer Vigil's)"}`;
  }
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
      `"${e.host}" is beyond loopback but mqtt.embedded.auth is "none", so anyone on that network could publish frames and read alerts; set mqtt.embedded.auth to "registry" (--mqtt-auth registry), or mqtt.embedded.insecure to true (--mqtt-insecure) to accept that`,
    );
  // Read only for broker auth and the Mosquitto export: elsewhere the operator would believe
  // devices need a password while anyone may connect.
  if (e.passwordFile !== null && !(e.enabled && e.auth === "registry") && !cfg.registry.mosquittoExport)
    throw new ConfigError(
      "mqtt.embedded.passwordFile",
      'is read only with mqtt.embedded.auth "registry" (or registry.mosquittoExport), so here it would be ignored and any client could connect without a password; set mqtt.embedded.auth to "registry" or remove passwordFile',
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
  const x = cfg.registry.mosquittoExport;
  if (x?.dynsec && (!cfg.mqtt.url || !cfg.mqtt.username || cfg.mqtt.password === null || !x.gatewayUserLine))
    throw new ConfigError(
      "registry.mosquittoExport.dynsec",
      "the dynamic-security plugin is synced over MQTT as the gateway's own user: set mqtt.url, mqtt.username, mqtt.password and registry.mosquittoExport.gatewayUserLine (or dynsec: false to export only the password and ACL files)",
    );
}

/** Whether `host` names the loopback interface (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || (host.startsWith("127.") && isIPv4(host));
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
  // From 1e21 on, String and toFixed write an exponent; such a number is an integer already.
  if (v >= 1e21) return BigInt(v) * 10n ** BigInt(decimals);
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
  if (code === "ELOOP")
    return `cannot read config file (ELOOP: a loop of symbolic links); run: ls -l ${path}, and give the file's path`;
  if (code === "ENOTDIR")
    return "cannot read config file: a part of the path is not a folder; give the file's path";
  if (code === "EACCES" || code === "EPERM")
    return `cannot read config file (${code}: permission denied); run: ls -l ${path}, then let the user the gateway runs as read it (the Pi install makes it root:vigil, mode 0640: run vigil commands on it with sudo)`;
  return `cannot read config file (${code ?? "error"})`;
}

/**
 * The file's text, at most MAX_CONFIG_BYTES: a regular file or a pipe (`-c <(…)`); a device
 * (`/dev/zero`) is refused instead of read for ever.
 */
function readConfigText(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new ConfigError(path, unreadableConfig(path, (e as NodeJS.ErrnoException).code), { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ConfigError(path, unreadableConfig(path, "EISDIR"));
    if (!st.isFile() && !st.isFIFO())
      throw new ConfigError(path, "is a device or socket, not a config file; give the file's path");
    const tooBig = () =>
      new ConfigError(
        path,
        `is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB, far more than a config file needs; give the file's path`,
      );
    if (st.size > MAX_CONFIG_BYTES) throw tooBig();
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    if (n > MAX_CONFIG_BYTES) throw tooBig();
    return buf.toString("utf8", 0, n);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(path, unreadableConfig(path, (e as NodeJS.ErrnoException).code), { cause: e });
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates a JSON config file. */
export function loadConfigFile(path: string): GatewayConfig {
  // A byte-order mark (editors on Windows write one) is not JSON: dropped, not a syntax error.
  const text = readConfigText(path).replace(/^\uFEFF/, "");
  let doc: unknown;
  // Comments (// and /* */) are allowed: `vigil init` writes a commented file. Blanked to white
  // space, so positions in messages hold and a key quoted in a comment is no key.
  const json = stripJsonComments(text);
  try {
    doc = JSON.parse(json);
  } catch (e) {
    // No cause: V8's message quotes the text around the error, which may be a password.
    throw new ConfigError(path, `not valid JSON (${jsonProblem((e as Error).message, text)})`);
  }
  // JSON.parse keeps the last of two equal keys: the first (a whole "mqtt" block) would be lost.
  const dup = duplicateKey(json);
  if (dup) throw new ConfigError(dup, `is set twice in one object of ${path}; keep one`);
  return resolveConfig(doc);
}

/**
 * The dotted path of the first key repeated within one object of `text` (valid JSON, comments
 * blanked), else undefined. A scan with an explicit stack: nesting depth cannot overflow it.
 */
export function duplicateKey(text: string): string | undefined {
  type Frame = { keys: Set<string>; key: string } | { index: number };
  const stack: Frame[] = [];
  const path = () =>
    stack
      .map((f) => ("keys" in f ? f.key : String(f.index)))
      .filter((s) => s !== "")
      .join(".");
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === "{") stack.push({ keys: new Set(), key: "" });
    else if (c === "[") stack.push({ index: 0 });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === "," && top && "index" in top) top.index++;
    else if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
      let j = i + 1;
      while (/\s/.test(text[j] ?? "")) j++;
      if (text[j] !== ":" || !top || !("keys" in top)) continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      top.key = key;
      if (top.keys.has(key)) return path();
      top.keys.add(key);
    }
  }
  return undefined;
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
