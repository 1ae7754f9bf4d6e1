/**
 * Gateway configuration: a JSON file validated against the one schema in config/schema.ts, which
 * also gives the type and the defaults (ajv `useDefaults`). Messages name the full path of the bad
 * setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { ConfigError, redactUrl } from "../core/errors.ts";
import { parseDeviceIdHex } from "../protocol/frame.ts";
import { ConfigSchema, type GatewayConfig } from "./schema.ts";

export type { GatewayConfig, SerialConfig } from "./schema.ts";

// useDefaults fills absent fields (nested objects default to {} and are then filled in turn).
// Compiled on first use: compiling costs more than the rest of `vigil <command> --help`.
let validate: ValidateFunction<GatewayConfig> | undefined;

/** Every default, read from the schema (test/config checks it equals what validation fills in). */
export const DEFAULT_CONFIG = defaultsOf(ConfigSchema) as GatewayConfig;

/** An object schema's defaults, built from its properties (an object's own `default: {}` is what ajv starts from). */
function defaultsOf(schema: { default?: unknown; properties?: Record<string, unknown> }): unknown {
  if (!schema.properties) return structuredClone(schema.default);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema.properties)) out[k] = defaultsOf(v as typeof schema);
  return out;
}

/**
 * Validates a partial config and fills the schema's defaults; the input is not modified.
 * Throws ConfigError naming the setting.
 */
export function resolveConfig(partial: unknown): GatewayConfig {
  const cfg: unknown = structuredClone(partial);
  validate ??= new Ajv({ allErrors: false, useDefaults: true }).compile<GatewayConfig>(ConfigSchema);
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
  if (cfg.chain.maxPriorityFeePerGasGwei > cfg.chain.maxFeePerGasGwei)
    throw new ConfigError("chain.maxPriorityFeePerGasGwei", "must not exceed chain.maxFeePerGasGwei");
  return cfg;
}

/** ajv's message plus what it leaves out: the unknown key's name, the allowed values. */
function describe(e: ErrorObject): string {
  if (e.keyword === "additionalProperties")
    return `unknown setting "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum")
    return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
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

/** All RPC endpoints of the chain config, in order of preference (chain.rpcUrl first). */
export function rpcUrlsOf(chain: GatewayConfig["chain"]): string[] {
  return [...(chain.rpcUrl ? [chain.rpcUrl] : []), ...chain.rpcUrls];
}

/** Reads and validates a JSON config file. */
export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(path, "cannot read config file", { cause: e });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, `not valid JSON (${(e as Error).message})`, { cause: e });
  }
  return resolveConfig(doc);
}

export function deviceSet(ids: string[]): Set<number> {
  return new Set(ids.map((s) => parseDeviceIdHex(s)!));
}
