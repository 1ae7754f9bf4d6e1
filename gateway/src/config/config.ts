/**
 * Gateway configuration: JSON file, validated against a JSON Schema with messages that name
 * the full path of the bad setting (e.g. `mqtt.embedded.port: must be <= 65535`).
 */
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import cron from "node-cron";
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
    embedded: {
      enabled: boolean;
      host: string;
      port: number;
      /**
       * Who may connect: "none" (anyone; development, loopback only) or "registry" (devices with
       * their password-file credential, readers with a reader token the registry allows; see
       * access/broker-policy.ts). Default "none".
       */
      auth: "none" | "registry";
      /** Device credentials (mosquitto_passwd `$7$` file), relative to dataDir; null = none. Default null. */
      passwordFile: string | null;
      /** Accept a non-loopback host with auth "none" (refused otherwise). Default false. */
      insecure: boolean;
      /** Also listen with TLS on `port`: PEM certificate and key files, relative to dataDir. Default null. */
      tls: { port: number; certFile: string; keyFile: string } | null;
      /** Also serve MQTT over WebSocket on `port` (wss:// when tls is set), for dashboards. Default null. */
      websocket: { port: number } | null;
      limits: {
        /** Largest MQTT packet, bytes. Default 16 384. */
        maxPacketBytes: number;
        /** Simultaneous connections per IP address. Default 64. */
        maxConnectionsPerAddress: number;
        /** Simultaneous connections in total. Default 10 000. */
        maxConnections: number;
        /** Unsent bytes queued to one client before it is disconnected. Default 1 048 576. */
        maxQueuedBytes: number;
      };
    };
    /** An external broker to subscribe to instead of (or besides) the embedded one. */
    url: string | null;
    clientId: string;
    username: string | null;
    password: string | null;
  };
  ingest: {
    /**
     * "open": the static lists below decide (development); "registry": a sensor must be registered
     * and active under this gateway in the registry (UNKNOWN_DEVICE / REVOKED_DEVICE). Default "open".
     */
    admission: "open" | "registry";
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
  /** The registry watch (chain/watch.ts); it runs when enabled or when admission/auth use the registry. */
  registry: {
    /** Run the watch even when nothing else needs it (gateway standing governs sealing). Default false. */
    enabled: boolean;
    /** node-cron expression (with seconds) of the refresh. Default every 15 s. */
    schedule: string;
    /** Blocks below the head re-read at every refresh (reorg safety). Default 12. */
    reorgDepth: number;
    /** Without a successful refresh for this long the cache is stale. Default 600 000 (10 min). */
    maxStaleMs: number;
    /** While stale: "keep" the last known state, or "refuse-new" connections and devices. Default "keep". */
    stalePolicy: "keep" | "refuse-new";
    /**
     * Keep an external Mosquitto in step with the registry: after every refresh that changed the
     * view, write `vigil.passwd` + `vigil.acl` into `dir` (relative to dataDir) from the device
     * password file (mqtt.embedded.passwordFile) and SIGHUP the PID in `pidFile`. null = off.
     */
    mosquittoExport: { dir: string; pidFile: string | null; gatewayUserLine: string | null } | null;
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
    embedded: {
      enabled: true,
      host: "127.0.0.1",
      port: 1883,
      auth: "none",
      passwordFile: null,
      insecure: false,
      tls: null,
      websocket: null,
      limits: {
        maxPacketBytes: 16_384,
        maxConnectionsPerAddress: 64,
        maxConnections: 10_000,
        maxQueuedBytes: 1_048_576,
      },
    },
    url: null,
    clientId: "vigil-gateway",
    username: null,
    password: null,
  },
  ingest: {
    admission: "open",
    allow: null,
    revoked: [],
    maxSkewMs: 86_400_000,
    maxPending: 20_000,
    busyRetryMs: 250,
  },
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
  registry: {
    enabled: false,
    schedule: "*/15 * * * * *",
    reorgDepth: 12,
    maxStaleMs: 600_000,
    stalePolicy: "keep",
    mosquittoExport: null,
  },
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
            auth: { enum: ["none", "registry"] },
            passwordFile: { type: ["string", "null"], minLength: 1 },
            insecure: { type: "boolean" },
            tls: {
              type: ["object", "null"],
              additionalProperties: false,
              required: ["port", "certFile", "keyFile"],
              properties: {
                port: { type: "integer", minimum: 0, maximum: 65535 },
                certFile: { type: "string", minLength: 1 },
                keyFile: { type: "string", minLength: 1 },
              },
            },
            websocket: {
              type: ["object", "null"],
              additionalProperties: false,
              required: ["port"],
              properties: { port: { type: "integer", minimum: 0, maximum: 65535 } },
            },
            limits: {
              type: "object",
              additionalProperties: false,
              properties: {
                maxPacketBytes: { type: "integer", minimum: 256, maximum: 268_435_455 },
                maxConnectionsPerAddress: { type: "integer", minimum: 1 },
                maxConnections: { type: "integer", minimum: 1 },
                maxQueuedBytes: { type: "integer", minimum: 1024 },
              },
            },
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
        admission: { enum: ["open", "registry"] },
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
    registry: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        schedule: { type: "string", minLength: 1 },
        reorgDepth: { type: "integer", minimum: 0, maximum: 10_000 },
        maxStaleMs: { type: "integer", minimum: 1000 },
        stalePolicy: { enum: ["keep", "refuse-new"] },
        mosquittoExport: {
          type: ["object", "null"],
          additionalProperties: false,
          required: ["dir"],
          properties: {
            dir: { type: "string", minLength: 1 },
            pidFile: { type: ["string", "null"], minLength: 1 },
            gatewayUserLine: { type: ["string", "null"], pattern: "^[^:\\s]+:\\$7\\$" },
          },
        },
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
  // A copy: callers (cli/start.ts) set fields of the result, which must never reach DEFAULT_CONFIG.
  if (over === undefined) return structuredClone(base);
  if (Array.isArray(base) || typeof base !== "object" || base === null) return over as T;
  const out = structuredClone(base) as Record<string, unknown>;
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
  checkAccessConfig(cfg);
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
  const usesRegistry = registryWatched(cfg);
  if (usesRegistry && (!cfg.chain.deployment || rpcUrlsOf(cfg.chain).length === 0))
    throw new ConfigError(
      cfg.ingest.admission === "registry"
        ? "ingest.admission"
        : e.auth === "registry"
          ? "mqtt.embedded.auth"
          : "registry.enabled",
      "the registry is read from the chain: set chain.deployment and chain.rpcUrl",
    );
}

/** Whether `host` names the loopback interface (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Whether the registry watch runs (it does when admission or broker auth need it). */
export function registryWatched(cfg: GatewayConfig): boolean {
  return cfg.registry.enabled || cfg.ingest.admission === "registry" || cfg.mqtt.embedded.auth === "registry";
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
