/**
 * Gateway configuration: JSON file, validated against a JSON Schema with messages that name
 * the full path of the bad setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { ConfigError } from "../errors/base.ts";
import { parseDeviceIdHex } from "../protocol/frame.ts";

export interface SerialConfig {
  path: string;
  baudRate: number;
}

export interface GatewayConfig {
  /** Where the store and keys live. Default `.vigil`. */
  dataDir: string;
  serial: SerialConfig[];
  mqtt: {
    /** The in-process aedes broker. Default enabled on 127.0.0.1:1883. */
    embedded: { enabled: boolean; host: string; port: number };
    /** An external broker to subscribe to instead of (or besides) the embedded one. */
    url: string | null;
    clientId: string;
    username: string | null;
    password: string | null;
  };
  ingest: {
    /** Devices allowed to send (8-hex-digit ids); null accepts any (development). */
    allow: string[] | null;
    revoked: string[];
    /** Largest accepted device clock error, ms. Default 86 400 000 (24 h). */
    maxSkewMs: number;
  };
  log: { level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent"; statsIntervalMs: number };
}

export const DEFAULT_CONFIG: GatewayConfig = {
  dataDir: ".vigil",
  serial: [],
  mqtt: {
    embedded: { enabled: true, host: "127.0.0.1", port: 1883 },
    url: null,
    clientId: "vigil-gateway",
    username: null,
    password: null,
  },
  ingest: { allow: null, revoked: [], maxSkewMs: 86_400_000 },
  log: { level: "info", statsIntervalMs: 5000 },
};

const deviceId = { type: "string", pattern: "^[0-9a-f]{8}$" };
const schema = {
  type: "object",
  additionalProperties: false,
  properties: {
    dataDir: { type: "string", minLength: 1 },
    serial: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["path"],
        properties: {
          path: { type: "string", minLength: 1 },
          baudRate: { type: "integer", minimum: 300, maximum: 4_000_000 },
        },
      },
    },
    mqtt: {
      type: "object",
      additionalProperties: false,
      properties: {
        embedded: {
          type: "object",
          additionalProperties: false,
          properties: {
            enabled: { type: "boolean" },
            host: { type: "string", minLength: 1 },
            port: { type: "integer", minimum: 0, maximum: 65535 },
          },
        },
        url: { type: ["string", "null"], pattern: "^(mqtts?|wss?|tcp)://" },
        clientId: { type: "string", minLength: 1, maxLength: 23 },
        username: { type: ["string", "null"] },
        password: { type: ["string", "null"] },
      },
    },
    ingest: {
      type: "object",
      additionalProperties: false,
      properties: {
        allow: { type: ["array", "null"], items: deviceId },
        revoked: { type: "array", items: deviceId },
        maxSkewMs: { type: "integer", minimum: 1000 },
      },
    },
    log: {
      type: "object",
      additionalProperties: false,
      properties: {
        level: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
        statsIntervalMs: { type: "integer", minimum: 100 },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: false }).compile(schema);

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
export type PartialConfig = DeepPartial<GatewayConfig>;

function merge<T>(base: T, over: unknown): T {
  if (over === undefined) return base;
  if (Array.isArray(base) || typeof base !== "object" || base === null) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = merge(out[k], v);
  return out as T;
}

/** Validates a partial config and fills defaults. Throws ConfigError naming the setting. */
export function resolveConfig(partial: unknown): GatewayConfig {
  if (!validate(partial)) {
    const e = validate.errors?.[0];
    const path = (e?.instancePath ?? "").replace(/^\//, "").replaceAll("/", ".") || "(root)";
    const extra =
      e?.keyword === "additionalProperties"
        ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : "";
    throw new ConfigError(path, `${e?.message ?? "invalid"}${extra}`);
  }
  const cfg = merge(DEFAULT_CONFIG, partial);
  cfg.serial = cfg.serial.map((s) => ({ path: s.path, baudRate: s.baudRate ?? 115200 }));
  return cfg;
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
