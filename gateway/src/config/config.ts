/**
 * Gateway configuration: JSON file, validated against a JSON Schema with messages that name
 * the full path of the bad setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { ConfigError } from "../core/errors.ts";
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
  log: {
    level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
    statsIntervalMs: number;
    /** "json" (pino JSON lines), "pretty" (human-readable), or "auto": pretty on a TTY, else JSON. Default auto. */
    format: "auto" | "json" | "pretty";
  };
  /**
   * The HTTP endpoint: `/metrics` (Prometheus), `/healthz`, `/readyz` and the live page `/`.
   * It has no authentication, so it binds to loopback only unless `allowRemote` is set.
   */
  http: {
    /** Default true. */
    enabled: boolean;
    /** Default 127.0.0.1. Any other address needs `allowRemote`. */
    host: string;
    /** Default 9479; 0 picks a free port. */
    port: number;
    /** Allow a non-loopback `host` (put a reverse proxy with authentication in front). Default false. */
    allowRemote: boolean;
  };
  /** Site name: the MQTT topic level of alerts and the registry site. Default `site-1`. */
  site: string;
  store: {
    /** Group commit: flush after this many ms… Default 1 (see attest/README.md, Storage). */
    groupCommitMs: number;
    /** …or this many frames, whichever first. Default 2000. */
    groupCommitFrames: number;
    /** Refuse new frames above this many bytes of live frames; null = only the disk bounds. */
    maxBytes: number | null;
    /** Refuse new frames when free disk space is below this. Default 64 MiB. */
    minFreeBytes: number;
    /** Size of the reserve file deleted on disk full so LevelDB can reopen. Default 16 MiB. */
    reserveBytes: number;
    /** Frames of anchored batches older than this are pruned. Default 30 days. */
    retentionDays: number;
  };
  attest: {
    /** Seal batches (needs a keystore and chain.deployment for the EIP-712 domain). Default true. */
    enabled: boolean;
    /** bytes32 gateway id as registered; null = keccak256("vigil-gateway:" + gatewayName). */
    gatewayId: string | null;
    /** Human name, also the MQTT topic level. Default `gw-1`. */
    gatewayName: string;
    /** Keystore file, relative to dataDir. Default `gateway.key`. */
    keystore: string;
    /** Seal every T ms… Default 10 000. */
    batchIntervalMs: number;
    /** …or K frames. Default 10 000. */
    batchMaxLeaves: number;
  };
  chain: {
    /** JSON-RPC URL of the L2; null = seal but do not anchor (batches wait in the outbox). */
    rpcUrl: string | null;
    /** Deployment file written by `vigil chain deploy` (registry address and chain id). */
    deployment: string | null;
    /** File with the hex private key of the account that pays gas (any funded account). */
    senderKeyFile: string | null;
    confirmations: number;
    anchorIntervalMs: number;
  };
  models: {
    /** Run inference and publish alerts. Default true when `dir` holds manifests. */
    enabled: boolean;
    /** Folder searched for `*.manifest.json`. Default `models` (relative to the package). */
    dir: string | null;
    threads: number;
    /** Where onnxruntime runs: "inline" (main thread) or "worker" (a worker thread per model). Default inline. */
    runner: "inline" | "worker";
  };
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
  log: { level: "info", statsIntervalMs: 5000, format: "auto" },
  http: { enabled: true, host: "127.0.0.1", port: 9479, allowRemote: false },
  site: "site-1",
  store: {
    groupCommitMs: 1,
    groupCommitFrames: 2000,
    maxBytes: null,
    minFreeBytes: 64 * 1024 * 1024,
    reserveBytes: 16 * 1024 * 1024,
    retentionDays: 30,
  },
  attest: {
    enabled: true,
    gatewayId: null,
    gatewayName: "gw-1",
    keystore: "gateway.key",
    batchIntervalMs: 10_000,
    batchMaxLeaves: 10_000,
  },
  chain: { rpcUrl: null, deployment: null, senderKeyFile: null, confirmations: 1, anchorIntervalMs: 5000 },
  models: { enabled: true, dir: null, threads: 1, runner: "inline" },
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
        statsIntervalMs: { type: "integer", minimum: 0 },
        format: { enum: ["auto", "json", "pretty"] },
      },
    },
    http: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        host: { type: "string", minLength: 1 },
        port: { type: "integer", minimum: 0, maximum: 65535 },
        allowRemote: { type: "boolean" },
      },
    },
    site: { type: "string", pattern: "^[A-Za-z0-9._-]{1,64}$" },
    store: {
      type: "object",
      additionalProperties: false,
      properties: {
        groupCommitMs: { type: "integer", minimum: 0, maximum: 1000 },
        groupCommitFrames: { type: "integer", minimum: 1, maximum: 100_000 },
        maxBytes: { type: ["integer", "null"], minimum: 1 },
        minFreeBytes: { type: "integer", minimum: 0 },
        reserveBytes: { type: "integer", minimum: 0 },
        retentionDays: { type: "number", minimum: 0 },
      },
    },
    attest: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        gatewayId: { type: ["string", "null"], pattern: "^0x[0-9a-fA-F]{64}$" },
        gatewayName: { type: "string", pattern: "^[A-Za-z0-9._-]{1,64}$" },
        keystore: { type: "string", minLength: 1 },
        batchIntervalMs: { type: "integer", minimum: 100 },
        batchMaxLeaves: { type: "integer", minimum: 1, maximum: 1_000_000 },
      },
    },
    chain: {
      type: "object",
      additionalProperties: false,
      properties: {
        rpcUrl: { type: ["string", "null"], pattern: "^(https?|wss?)://" },
        deployment: { type: ["string", "null"], minLength: 1 },
        senderKeyFile: { type: ["string", "null"], minLength: 1 },
        confirmations: { type: "integer", minimum: 0, maximum: 64 },
        anchorIntervalMs: { type: "integer", minimum: 100 },
      },
    },
    models: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        dir: { type: ["string", "null"], minLength: 1 },
        threads: { type: "integer", minimum: 1, maximum: 16 },
        runner: { enum: ["inline", "worker"] },
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
