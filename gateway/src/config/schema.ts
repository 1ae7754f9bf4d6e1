/**
 * The gateway's configuration as ONE JSON Schema: its TypeScript type (`Static`), its defaults
 * (`default`, applied by ajv's `useDefaults`), its validation, and the README's configuration
 * table (config/docs.ts renders it; test/config/docs.test.ts checks the README against it).
 *
 * TypeBox builds the schema so the static type follows it without a second copy (a hand-written
 * interface, defaults object and schema drifted apart before).
 */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { defaultGatewayName } from "./gateway-id.ts";

/** `T | null`, written as JSON Schema `type: [T, "null"]` so ajv's messages stay short. */
function nullable<T extends TSchema>(t: T, o: { default: Static<T> | null; description: string }) {
  const { type, ...rest } = t as unknown as { type: string } & Record<string, unknown>;
  return Type.Unsafe<Static<T> | null>({ ...rest, type: [type, "null"], ...o });
}

/** A string enum as JSON Schema `enum` (ajv then names the allowed values; see config.ts). */
function choice<const V extends readonly string[]>(
  values: V,
  o: { default: V[number]; description: string },
) {
  return Type.Unsafe<V[number]>({ type: "string", enum: values, ...o });
}

/**
 * Longest interval or timeout that becomes a Node timer: setTimeout/setInterval fire after 1 ms
 * (TimeoutOverflowWarning) beyond 2^31-1 ms (24.8 days), so a larger value would run flat out.
 */
export const MAX_TIMER_MS = 2_147_483_647;

const deviceId = Type.String({ pattern: "^[0-9a-f]{8}$", description: "device id, 8 lowercase hex digits" });
const name = (def: string, description: string, defaultDoc?: string) =>
  Type.String({
    pattern: "^[A-Za-z0-9._-]{1,64}$",
    default: def,
    description,
    ...(defaultDoc ? { defaultDoc } : {}),
  });

const Serial = Type.Object(
  {
    path: Type.String({ minLength: 1, description: "Serial device, e.g. /dev/serial/by-id/…" }),
    baudRate: Type.Integer({ minimum: 300, maximum: 4_000_000, default: 115200, description: "Line speed." }),
  },
  { additionalProperties: false },
);

const Mqtt = Type.Object(
  {
    embedded: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Run the in-process aedes broker." }),
        host: Type.String({ minLength: 1, default: "127.0.0.1", description: "Address it listens on." }),
        port: Type.Integer({
          minimum: 0,
          maximum: 65535,
          default: 1883,
          description: "Port (0 = any free port: `vigil start` logs its URL as `mqtt` in `gateway started`).",
        }),
        auth: choice(["none", "registry"], {
          default: "none",
          description:
            'Who may connect: "none" (anyone; loopback development) or "registry" (devices with a device token (required when the registry holds their key) or a password-file secret, readers with a reader token the registry allows; gateway/src/access/README.md).',
        }),
        passwordFile: nullable(Type.String({ minLength: 1 }), {
          default: null,
          description:
            'Device credentials (mosquitto_passwd $7$ format), relative to dataDir; read with auth "registry" and by registry.mosquittoExport, refused otherwise.',
        }),
        insecure: Type.Boolean({
          default: false,
          description: 'Accept a non-loopback host with auth "none" (refused otherwise).',
        }),
        tls: nullable(
          Type.Object(
            {
              port: Type.Integer({ minimum: 0, maximum: 65535 }),
              certFile: Type.String({ minLength: 1 }),
              keyFile: Type.String({ minLength: 1 }),
            },
            { additionalProperties: false },
          ),
          {
            default: null,
            description: "Also listen with TLS (mqtts://) on port: PEM files relative to dataDir.",
          },
        ),
        websocket: nullable(
          Type.Object(
            { port: Type.Integer({ minimum: 0, maximum: 65535 }) },
            { additionalProperties: false },
          ),
          {
            default: null,
            description: "Also serve MQTT over WebSocket on port (wss:// with tls), for dashboards.",
          },
        ),
        limits: Type.Object(
          {
            maxPacketBytes: Type.Integer({
              minimum: 256,
              maximum: 268_435_455,
              default: 16_384,
              description: "Largest MQTT packet; a larger one disconnects its client.",
            }),
            maxConnectionsPerAddress: Type.Integer({
              minimum: 1,
              default: 64,
              description: "Simultaneous connections from one IP address (loopback exempt).",
            }),
            maxConnectsPerSecondPerAddress: Type.Integer({
              minimum: 1,
              default: 50,
              description:
                "New connections accepted from one IP address per second (loopback exempt); more are held unread for 1 s, then closed, with no CONNACK.",
            }),
            maxConnections: Type.Integer({
              minimum: 1,
              default: 10_000,
              description: "Simultaneous connections in total.",
            }),
            maxQueuedBytes: Type.Integer({
              minimum: 1024,
              default: 1_048_576,
              description: "Unsent bytes queued to one client before it is disconnected.",
            }),
            maxStoredSessions: Type.Integer({
              minimum: 1,
              default: 1000,
              description:
                "Stored sessions (clients connected with clean session false) kept at most; a CONNECT that would store one more is refused with CONNACK 3 (server unavailable).",
            }),
            maxStoredSessionsPerIdentity: Type.Integer({
              minimum: 1,
              default: 100,
              description:
                'Stored sessions one authenticated identity (a device or a reader, auth "registry") keeps at most, so one identity cannot take every place of maxStoredSessions; one more is refused with CONNACK 3. Not applied with auth "none" (every client is one anonymous identity).',
            }),
            maxStoredMessages: Type.Integer({
              minimum: 1,
              default: 1000,
              description:
                "QoS 1 and 2 messages kept for one stored session until its client acknowledges them (as Mosquitto's max_queued_messages); more are not queued for it, and counted (storedDropped). Also the QoS 2 messages one client id may leave without their PUBREL, across reconnects; one more closes its connection, counted (storedInboundRefused).",
            }),
            maxStoredBytes: Type.Integer({
              minimum: 1024,
              default: 16_777_216,
              description:
                "Bytes kept in all stored sessions' queues together, counting each message's payload, topic and 256 bytes of bookkeeping; beyond it messages are not queued, and counted (storedDropped). QoS 2 message ids awaiting their PUBREL are bounded by it apart, at 256 bytes each (one more closes its connection, storedInboundRefused).",
            }),
            maxSubscriptionsPerClient: Type.Integer({
              minimum: 1,
              default: 32,
              description:
                "Topic filters one client holds at most, its stored session's included; one more is refused with SUBACK 0x80, counted (subscribeRefused_too_many_subscriptions).",
            }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    url: nullable(Type.String({ pattern: "^(mqtts?|wss?|tcp)://" }), {
      default: null,
      description: "An external broker to subscribe to instead of (or besides) the embedded one.",
    }),
    connectTimeoutMs: Type.Integer({
      minimum: 100,
      maximum: 600_000,
      default: 10_000,
      description:
        "At start, how long to wait for the external broker's CONNACK before going on without it (degraded: reconnecting every second, a /readyz warning); a broker that refuses the CONNECT (credentials, client id) is fatal. Also how long the start waits for it to acknowledge the gateway's online status, and the stop, in all, for the alerts in flight and the offline status (then they go on, degraded); a broker that did not answer is waited for once per start, a stop asked during that wait (SIGTERM) ends it, and the stop does not wait for a broker that is not connected (what was in flight is dropped, and the log says how much).",
    }),
    clientId: Type.String({
      minLength: 1,
      maxLength: 16,
      default: "vigil-gateway",
      description:
        "Client id at the external broker; alerts connect as {clientId}-alerts, so at most 16 characters keep both within the 23 every MQTT 3.1.1 broker must accept [MQTT-3.1.3-5].",
    }),
    username: nullable(Type.String(), { default: null, description: "External broker user." }),
    password: nullable(Type.String(), {
      default: null,
      description: "External broker password (never logged).",
    }),
    readingsIntervalMs: nullable(Type.Integer({ minimum: 0, maximum: MAX_TIMER_MS }), {
      default: 1000,
      description:
        "Decoded JSON readings of stored frames on vigil/v1/{site}/{gateway}/{device}/reading (QoS 0), at most one per device this often, ms; 0 = every frame, null = none (gateway/src/alerts/README.md).",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Ingest = Type.Object(
  {
    admission: choice(["open", "registry"], {
      default: "open",
      description:
        '"open": allow/revoked below decide (development); "registry": a sensor must be registered and active under this gateway (UNKNOWN_DEVICE / REVOKED_DEVICE). The gateway keeps state for every device id it has admitted, for as long as it runs (about 15 KB each with a model, 3 KB without; its sequence state and last HELLO are reloaded at every start): with "open" and no allow list, a local client inventing ids grows it.',
    }),
    allow: nullable(Type.Array(deviceId), {
      default: null,
      description:
        "Devices allowed to send; null accepts any (development). Others are NACKed UNKNOWN_DEVICE.",
    }),
    revoked: Type.Array(deviceId, { default: [], description: "Devices NACKed REVOKED_DEVICE." }),
    maxSkewMs: Type.Integer({
      minimum: 1000,
      default: 86_400_000,
      description: "Largest accepted device clock error, ms.",
    }),
    maxPending: Type.Integer({
      minimum: 100,
      maximum: 10_000_000,
      default: 2_000,
      description:
        "Frames in flight to the store above which ingest pushes back (serial BUSY, MQTT PUBACK held).",
    }),
    busyRetryMs: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 250,
      description: "retry_after_ms of BUSY NACKs to serial devices.",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Log = Type.Object(
  {
    level: choice(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
      default: "info",
      description: "Log level.",
    }),
    statsIntervalMs: Type.Integer({
      minimum: 0,
      maximum: MAX_TIMER_MS,
      default: 5000,
      description: "Counters logged every N ms (0 = never, else at least 100).",
    }),
    format: choice(["auto", "json", "pretty"], {
      default: "auto",
      description:
        '"json" (pino JSON lines), "pretty" (human-readable), or "auto": pretty on a terminal, else JSON.',
    }),
  },
  { additionalProperties: false, default: {} },
);

/** The HTTP endpoint (gateway/src/http/README.md): loopback, or with an access token when allowRemote. */
const Http = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description:
        "Serve /metrics, /healthz, /readyz, /api/summary, /api/alerts, /api/updates, the live page (/, /events) and the operator actions (POST /api/updates/check, /retry).",
    }),
    host: Type.String({
      minLength: 1,
      default: "127.0.0.1",
      description: "Address to bind; anything but loopback needs allowRemote.",
    }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 9479,
      description:
        "Port; 0 picks a free port. A port the Fetch standard blocks (6666, 6000, 10080, …: browsers and fetch refuse them) is refused.",
    }),
    allowRemote: Type.Boolean({
      default: false,
      description: "Allow a non-loopback host; needs authTokenFile.",
    }),
    authTokenFile: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description:
        "File (mode 0600, relative to dataDir) whose first line is the access token (32+ characters): every request but /healthz then needs it (Bearer, or Basic with any user name).",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Store = Type.Object(
  {
    groupCommitMs: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 1,
      description: "Group commit: sync after this many ms…",
    }),
    groupCommitFrames: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 2000,
      description: "…or this many frames, whichever first.",
    }),
    maxBytes: nullable(Type.Integer({ minimum: 1 }), {
      default: null,
      description: "Refuse new frames above this many bytes of live frames; null = only the disk bounds.",
    }),
    minFreeBytes: Type.Integer({
      minimum: 0,
      default: 64 * 1024 * 1024,
      description:
        "Refuse new frames when free disk space is below this; accept again once it is above 1.25 × this (a disk at the line does not flip between the two).",
    }),
    reserveBytes: Type.Integer({
      minimum: 0,
      default: 16 * 1024 * 1024,
      description: "Reserve file deleted on disk full so the store can reopen.",
    }),
    retentionDays: Type.Number({
      minimum: 0,
      default: 30,
      description:
        "Frames of batches anchored (final) longer ago than this (gateway uptime, not wall clock) are pruned. Each batch's record and packed leaf hashes are kept for ever (32 bytes per sealed entry: a frame, an inference, an alert): at 10 frames/s with one inference each about 55 MB a day, 20 GB a year; size the disk for the years the gateway runs.",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Attest = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: "Seal batches (needs the keystore and chain.deployment).",
    }),
    gatewayId: nullable(Type.String({ pattern: "^0x[0-9a-fA-F]{64}$" }), {
      default: null,
      description: 'bytes32 gateway id as registered; null = keccak256("vigil-gateway:" + gatewayName).',
    }),
    gatewayName: name(
      defaultGatewayName(),
      "Human name, also the MQTT topic level and (hashed) the registry id; distinct per box by default.",
      "gw- + 12 hex digits of a keyed sha256 of the machine id (else gw-<hostname>)",
    ),
    keystore: Type.String({
      minLength: 1,
      default: "gateway.key",
      description: "Keystore file, relative to dataDir.",
    }),
    batchIntervalMs: Type.Integer({
      minimum: 100,
      maximum: MAX_TIMER_MS,
      default: 10_000,
      description: "Seal every T ms…",
    }),
    batchMaxLeaves: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 10_000,
      description: "…or K leaves.",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Chain = Type.Object(
  {
    rpcUrl: nullable(Type.String({ pattern: "^https?://" }), {
      default: null,
      description:
        "JSON-RPC URL of the L2, the most preferred endpoint of the RPC pools of anchoring, the registry watch and the update agents; null with rpcUrls empty = seal but do not anchor (batches wait in the outbox).",
    }),
    rpcUrls: Type.Array(Type.String({ pattern: "^https?://" }), {
      maxItems: 8,
      default: [],
      description: "More endpoints of the same chain, tried in order when the ones before fail.",
    }),
    deployment: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description:
        "Deployment file written by `vigil chain deploy` (registry, chain id, deployment block), relative to dataDir.",
    }),
    senderKeyFile: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description:
        "File (0600, relative to dataDir) with the hex key of the account paying gas; else VIGIL_CHAIN_SENDER_KEY.",
    }),
    finality: choice(["depth", "finalized"], {
      default: "depth",
      description: 'When an anchor is final: "depth" (confirmations) or the chain\'s "finalized" tag.',
    }),
    confirmations: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 12,
      description: "Finality depth, blocks.",
    }),
    anchorIntervalMs: Type.Integer({
      minimum: 100,
      maximum: MAX_TIMER_MS,
      default: 5000,
      description: "Anchor the outbox every N ms.",
    }),
    maxBatchesPerTx: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 10,
      description: "Batches per transaction when a backlog waits (anchorMany).",
    }),
    logBlockRange: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 10_000,
      description: "Largest block range of one eth_getLogs.",
    }),
    rpcTimeoutMs: Type.Integer({
      minimum: 100,
      maximum: 300_000,
      default: 10_000,
      description: "Timeout of one JSON-RPC request, ms.",
    }),
    healthCheckIntervalMs: Type.Integer({
      minimum: 0,
      maximum: MAX_TIMER_MS,
      default: 15_000,
      description:
        "Health probe of the RPC endpoints, ms (0 = none: failover on transport failures only, no lag check, no return to a recovered preferred endpoint).",
    }),
    maxLagBlocks: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: 10,
      description:
        "Blocks an RPC endpoint may be behind the highest one at a health probe before it is skipped (with two or more endpoints).",
    }),
    maxFeePerGasGwei: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1_000_000,
      default: 50,
      description: "Cap on maxFeePerGas, gwei.",
    }),
    maxPriorityFeePerGasGwei: Type.Number({
      minimum: 0,
      maximum: 1_000_000,
      default: 2,
      description: "Cap on the priority fee, gwei.",
    }),
    maxSpendPerDayEth: nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 }), {
      default: 0.1,
      description: "Largest spend on anchoring per UTC day (gas + L1 fee), ETH; null = no cap.",
    }),
    bumpAfterBlocks: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      default: 3,
      description: "Blocks a transaction may wait unmined before a fee bump.",
    }),
    feeBumpPercent: Type.Number({
      minimum: 10,
      maximum: 1000,
      default: 12.5,
      description: "Fee increase of each replacement, percent (≥ 10).",
    }),
    stallAfterMs: Type.Integer({
      minimum: 1000,
      maximum: MAX_TIMER_MS,
      default: 120_000,
      description:
        "An anchor transaction in flight while the endpoint reports no new block for this long is shown as stalled (no-blocks), ms; raise it on a chain whose blocks come slowly or irregularly.",
    }),
  },
  { additionalProperties: false, default: {} },
);

const Models = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: "Run inference and publish alerts (when dir holds manifests).",
    }),
    dir: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description:
        "Folder searched for *.manifest.json (relative to the current folder, not dataDir); null = the models shipped in the package.",
    }),
    threads: Type.Integer({
      minimum: 1,
      maximum: 16,
      default: 1,
      description: "onnxruntime intra-op threads per model.",
    }),
    runner: choice(["inline", "worker"], {
      default: "inline",
      description:
        '"inline" (main thread) or "worker" (one worker thread per model; it holds the only session).',
    }),
    windowBacklog: Type.Integer({
      minimum: 1,
      maximum: 1024,
      default: 8,
      description:
        "Ready windows kept per device until inference runs them, oldest first; beyond it the oldest is skipped and counted (1 = only the newest runs).",
    }),
    precision: choice(["auto", "float32", "int8"], {
      default: "auto",
      description:
        'Which file of a model to run: "auto" = the manifest\'s preference for this CPU (model.prefer), or a precision (a model without it runs its main file).',
    }),
  },
  { additionalProperties: false, default: {} },
);

const Registry = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        "Run the registry watch even when admission, broker auth, updates and the Mosquitto export do not need it (the gateway's standing then governs sealing).",
    }),
    schedule: Type.String({
      minLength: 1,
      default: "*/15 * * * * *",
      description: "node-cron expression (with seconds) of the registry refresh.",
    }),
    reorgDepth: Type.Integer({
      minimum: 0,
      maximum: 10_000,
      default: 12,
      description: "Blocks below the head re-read at every refresh.",
    }),
    maxStaleMs: Type.Integer({
      minimum: 1000,
      maximum: MAX_TIMER_MS,
      default: 600_000,
      description: "Without a successful refresh for this long the registry cache is stale.",
    }),
    stalePolicy: choice(["keep", "refuse-new"], {
      default: "keep",
      description: 'While stale: "keep" the last known state, or "refuse-new" connections and devices.',
    }),
    mosquittoExport: nullable(
      Type.Object(
        {
          dir: Type.String({ minLength: 1 }),
          pidFile: nullable(Type.String({ minLength: 1 }), {
            default: null,
            description: "File holding the PID of the Mosquitto to SIGHUP (relative to dataDir).",
          }),
          gatewayUserLine: nullable(Type.String({ pattern: "^[^:\\s]+:\\$7\\$" }), {
            default: null,
            description: "The gateway's own password-file line at that broker (mqtt.username).",
          }),
          dynsec: Type.Boolean({
            default: true,
            description:
              "Authorise through Mosquitto's dynamic-security plugin (denied SUBSCRIBE → SUBACK 0x80 / 0x87), synced over mqtt.url as mqtt.username after every change; false: the ACL file only (Mosquitto 2.0 then grants every SUBSCRIBE and drops at delivery).",
          }),
        },
        { additionalProperties: false },
      ),
      {
        default: null,
        description:
          "After every registry change, and when a reader grant expires, write vigil.passwd, vigil.acl and vigil.dynsec.json into dir (relative to dataDir), sync the dynamic-security plugin and SIGHUP the PID in pidFile.",
      },
    ),
  },
  { additionalProperties: false, default: {} },
);

/** Verified model and firmware updates from on-chain releases (gateway/src/updates/README.md). */
const Updates = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        "Follow model and firmware releases on chain (needs chain.rpcUrl or chain.rpcUrls, chain.deployment and the gateway key: attest.enabled with its keystore); turns the registry watch on, whose release events trigger a check.",
    }),
    schedule: Type.String({
      minLength: 1,
      default: "*/5 * * * *",
      description: "node-cron expression of the release check.",
    }),
    ipfsGateway: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description:
        "HTTP gateway for ipfs:// URIs (its bytes are verified against the CID, never trusted): an http(s):// URL; user:password@ in it is sent as Basic auth (https:// only).",
    }),
    shadowWindows: Type.Integer({
      minimum: 1,
      default: 100,
      description: "Windows a candidate model runs in shadow before it may be promoted.",
    }),
    shadowMaxMs: Type.Integer({
      minimum: 1000,
      maximum: MAX_TIMER_MS,
      default: 600_000,
      description:
        "Longest shadow phase, ms; the candidate is then judged on the windows it ran (none, and no frames came: tried again at the next check).",
    }),
    maxCostFactor: Type.Number({
      exclusiveMinimum: 0,
      default: 3,
      description:
        "A candidate's median cost per window in shadow may be at most this times the live model's.",
    }),
    maxModelBytes: Type.Integer({
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      default: 33_554_432,
      description:
        "A model release larger than this many bytes is refused before it is fetched (TOO_LARGE): it is read whole and held by two onnxruntime sessions (check and shadow). 32 MiB, 70× the largest model shipped.",
    }),
    maxFirmwareBytes: Type.Integer({
      minimum: 1,
      maximum: 4_294_967_295,
      default: 16_777_216,
      description:
        "A firmware release larger than this many bytes is refused on every device before it is fetched (TOO_LARGE): the image is held in memory while its transfers run. 16 MiB.",
    }),
    fetchTimeoutMs: Type.Integer({
      minimum: 1000,
      maximum: MAX_TIMER_MS,
      default: 120_000,
      description:
        "Time each release URI has to deliver its file (headers and body together), ms, models and firmware alike.",
    }),
    staleAfterMs: Type.Integer({
      minimum: 1000,
      maximum: MAX_TIMER_MS,
      default: 3_600_000,
      description:
        "Marked stale (freeze alarm) after this long without a successful check, ms; a check whose chain view (the RPC's newest block) is older than this fails, except on a local development chain.",
    }),
    firmware: Type.Boolean({
      default: true,
      description: "Offer firmware releases to serial sensors (when updates are enabled).",
    }),
    firmwareTarget: nullable(Type.String({ minLength: 1 }), {
      default: null,
      description: "Firmware target of every serial sensor; null = the profile in its HELLO.",
    }),
  },
  { additionalProperties: false, default: {} },
);

/** The configuration file's schema (every field optional; `default` fills what is absent). */
export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({
      minLength: 1,
      default: ".vigil",
      description: "Where the store and keys live (relative to the current folder).",
    }),
    site: name("site-1", "Site name: the MQTT topic level of alerts and the registry site."),
    serial: Type.Array(Serial, { default: [], description: "Serial ports to read frames from." }),
    mqtt: Mqtt,
    ingest: Ingest,
    store: Store,
    attest: Attest,
    chain: Chain,
    registry: Registry,
    updates: Updates,
    models: Models,
    log: Log,
    http: Http,
  },
  { additionalProperties: false },
);

/** The resolved configuration: every field present. */
export type GatewayConfig = Static<typeof ConfigSchema>;
export type SerialConfig = Static<typeof Serial>;
