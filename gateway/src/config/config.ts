/**
 * Gateway configuration: JSON file, validated against a JSON Schema with messages that name
 * the full path of the bad setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { ConfigError, redactUrl } from "../core/errors.ts";
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
    /** Frames in flight to the store above which ingest pushes back (serial BUSY, MQTT paused). Default 20 000. */
    maxPending: number;
    /** `retry_after_ms` of BUSY NACKs to serial devices. Default 250. */
    busyRetryMs: number;
  };
  log: { level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent"; statsIntervalMs: number };
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
    /** JSON-RPC URL of the L2 (http/https); null = seal but do not anchor (batches wait in the outbox). */
    rpcUrl: string | null;
    /** More endpoints of the same chain, tried in order when the ones before fail (failover). Default []. */
    rpcUrls: string[];
    /** Deployment file written by `vigil chain deploy` (registry address, chain id, deployment block). */
    deployment: string | null;
    /**
     * File with the hex private key of the account that pays gas (any funded account), mode 0600;
     * else the environment variable VIGIL_CHAIN_SENDER_KEY.
     */
    senderKeyFile: string | null;
    /** When an anchor counts as final: "depth" (`confirmations` blocks) or the chain's "finalized" tag. Default "depth". */
    finality: "depth" | "finalized";
    /** Finality depth: an anchor is final once its block has this many confirmations. Default 12. */
    confirmations: number;
    anchorIntervalMs: number;
    /** Batches per transaction when a backlog waits (registry anchorMany). Default 10. */
    maxBatchesPerTx: number;
    /** Largest block range of one eth_getLogs request. Default 10 000 (what hosted providers accept). */
    logBlockRange: number;
    /** Timeout of one JSON-RPC request, ms. Default 10 000. */
    rpcTimeoutMs: number;
    /** Health probe period of the RPC endpoints, ms (0 = only on failure). Default 15 000. */
    healthCheckIntervalMs: number;
    /** Cap on the EIP-1559 maxFeePerGas offered, gwei. Default 50. */
    maxFeePerGasGwei: number;
    /** Cap on the EIP-1559 maxPriorityFeePerGas (tip), gwei. Default 2. */
    maxPriorityFeePerGasGwei: number;
    /** Largest spend on anchoring per UTC day (gas + L1 fee), ETH; null = no cap. Default 0.1. */
    maxSpendPerDayEth: number | null;
    /** Blocks a transaction may wait unmined before it is replaced with a higher fee. Default 3. */
    bumpAfterBlocks: number;
    /** Fee increase of each replacement, percent (≥ 10, geth's minimum). Default 12.5. */
    feeBumpPercent: number;
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
  /** Verified model and firmware updates from on-chain releases (gateway/src/updates/README.md). */
  updates: {
    /** Follow releases (needs chain.rpcUrl, chain.deployment and the gateway key). Default false. */
    enabled: boolean;
    /** node-cron expression of the release check. Default every 5 minutes. */
    schedule: string;
    /** IPFS HTTP gateway for ipfs:// URIs (the CID is verified, the gateway not trusted). Default none. */
    ipfsGateway: string | null;
    /** Windows a candidate model runs in shadow before promotion. Default 100. */
    shadowWindows: number;
    /** Longest shadow phase, ms. Default 600 000. */
    shadowMaxMs: number;
    /** A candidate's cost per window may be at most this × the live model's. Default 3. */
    maxCostFactor: number;
    /** Stale (freeze alarm) after this long without a successful check, ms. Default 3 600 000. */
    staleAfterMs: number;
    /** Offer firmware releases to serial sensors. Default true (when updates are enabled). */
    firmware: boolean;
    /** Firmware target of every serial sensor; null: the profile in its HELLO. Default null. */
    firmwareTarget: string | null;
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
  ingest: { allow: null, revoked: [], maxSkewMs: 86_400_000, maxPending: 20_000, busyRetryMs: 250 },
  log: { level: "info", statsIntervalMs: 5000 },
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
  chain: {
    rpcUrl: null,
    rpcUrls: [],
    deployment: null,
    senderKeyFile: null,
    finality: "depth",
    confirmations: 12,
    anchorIntervalMs: 5000,
    maxBatchesPerTx: 10,
    logBlockRange: 10_000,
    rpcTimeoutMs: 10_000,
    healthCheckIntervalMs: 15_000,
    maxFeePerGasGwei: 50,
    maxPriorityFeePerGasGwei: 2,
    maxSpendPerDayEth: 0.1,
    bumpAfterBlocks: 3,
    feeBumpPercent: 12.5,
  },
  models: { enabled: true, dir: null, threads: 1, runner: "inline" },
  updates: {
    enabled: false,
    schedule: "*/5 * * * *",
    ipfsGateway: null,
    shadowWindows: 100,
    shadowMaxMs: 600_000,
    maxCostFactor: 3,
    staleAfterMs: 3_600_000,
    firmware: true,
    firmwareTarget: null,
  },
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
        maxPending: { type: "integer", minimum: 100, maximum: 10_000_000 },
        busyRetryMs: { type: "integer", minimum: 1, maximum: 65535 },
      },
    },
    log: {
      type: "object",
      additionalProperties: false,
      properties: {
        level: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
        statsIntervalMs: { type: "integer", minimum: 0 },
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
        rpcUrl: { type: ["string", "null"], pattern: "^https?://" },
        rpcUrls: { type: "array", maxItems: 8, items: { type: "string", pattern: "^https?://" } },
        deployment: { type: ["string", "null"], minLength: 1 },
        senderKeyFile: { type: ["string", "null"], minLength: 1 },
        finality: { enum: ["depth", "finalized"] },
        confirmations: { type: "integer", minimum: 1, maximum: 1000 },
        anchorIntervalMs: { type: "integer", minimum: 100 },
        maxBatchesPerTx: { type: "integer", minimum: 1, maximum: 100 },
        logBlockRange: { type: "integer", minimum: 1, maximum: 1_000_000 },
        rpcTimeoutMs: { type: "integer", minimum: 100, maximum: 300_000 },
        healthCheckIntervalMs: { type: "integer", minimum: 0 },
        maxFeePerGasGwei: { type: "number", exclusiveMinimum: 0, maximum: 1_000_000 },
        maxPriorityFeePerGasGwei: { type: "number", minimum: 0, maximum: 1_000_000 },
        maxSpendPerDayEth: { type: ["number", "null"], exclusiveMinimum: 0 },
        bumpAfterBlocks: { type: "integer", minimum: 1, maximum: 10_000 },
        feeBumpPercent: { type: "number", minimum: 10, maximum: 1000 },
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
    updates: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        schedule: { type: "string", minLength: 9 },
        ipfsGateway: { type: ["string", "null"], minLength: 1 },
        shadowWindows: { type: "integer", minimum: 1 },
        shadowMaxMs: { type: "integer", minimum: 1000 },
        maxCostFactor: { type: "number", exclusiveMinimum: 0 },
        staleAfterMs: { type: "integer", minimum: 1000 },
        firmware: { type: "boolean" },
        firmwareTarget: { type: ["string", "null"], minLength: 1 },
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
