/** `vigil start`: run the gateway. */
import { DEFAULT_CONFIG, loadConfigFile, resolveConfig, type GatewayConfig } from "../config/config.ts";
import type { VigilError } from "../core/errors.ts";
import { num, parse } from "./args.ts";

export const START_HELP = `usage: vigil start [options]

Runs the gateway: ingest from serial ports and MQTT, store durably (acknowledging only
synced frames), run the models and publish alerts, seal signed batches, anchor them.

  -c, --config FILE      JSON config (see README "Configuration"); flags override it
  --data-dir DIR         store, keystore and deployment file location (default ${DEFAULT_CONFIG.dataDir})
  --rpc URL              anchor batches on this chain (needs chain.deployment and a sender key)
  --deployment FILE      deployment file from "vigil chain deploy" (EIP-712 domain, registry)
  --serial PATH          add a serial port (repeatable), e.g. /dev/ttyUSB0
  --baud N               baud rate for --serial ports (default 115200)
  --mqtt-port N          embedded broker port (default ${DEFAULT_CONFIG.mqtt.embedded.port}; 0 = any free port)
  --mqtt-host HOST       embedded broker address (default ${DEFAULT_CONFIG.mqtt.embedded.host})
  --no-embedded          do not run the embedded broker
  --mqtt-url URL         also subscribe to an external broker (mqtt://user:pass@host:1883)
  --stats-ms MS          counter log interval (default ${DEFAULT_CONFIG.log.statsIntervalMs})
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help             this text

Stops cleanly on SIGINT/SIGTERM.
`;

export function startConfig(argv: string[]): GatewayConfig | undefined {
  const { values: v } = parse(argv, {
    config: { type: "string", short: "c" },
    "data-dir": { type: "string" },
    rpc: { type: "string" },
    deployment: { type: "string" },
    serial: { type: "string", multiple: true },
    baud: { type: "string" },
    "mqtt-port": { type: "string" },
    "mqtt-host": { type: "string" },
    "no-embedded": { type: "boolean" },
    "mqtt-url": { type: "string" },
    "stats-ms": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return undefined;
  const base = v.config ? loadConfigFile(v.config) : resolveConfig({});
  const cfg: GatewayConfig = structuredClone(base);
  if (v["data-dir"]) cfg.dataDir = v["data-dir"];
  if (v.rpc) cfg.chain.rpcUrl = v.rpc;
  if (v.deployment) cfg.chain.deployment = v.deployment;
  const baud = num("baud", v.baud, 115200, 300);
  for (const path of v.serial ?? []) cfg.serial.push({ path, baudRate: baud });
  if (v["mqtt-port"] !== undefined) cfg.mqtt.embedded.port = num("mqtt-port", v["mqtt-port"], 1883, 0, 65535);
  if (v["mqtt-host"]) cfg.mqtt.embedded.host = v["mqtt-host"];
  if (v["no-embedded"]) cfg.mqtt.embedded.enabled = false;
  if (v["mqtt-url"]) cfg.mqtt.url = v["mqtt-url"];
  if (v["stats-ms"] !== undefined) cfg.log.statsIntervalMs = num("stats-ms", v["stats-ms"], 5000, 100);
  // Re-validate so flag values get the same checks as file values.
  return resolveConfig({ ...cfg, log: { ...cfg.log, ...(v["log-level"] ? { level: v["log-level"] } : {}) } });
}

export async function startCommand(argv: string[]): Promise<number> {
  const cfg = startConfig(argv);
  if (!cfg) {
    process.stdout.write(START_HELP);
    return 0;
  }
  // Imported here, not at the top: `vigil start --help` must not load the whole gateway.
  const [{ Runtime }, { createLogger }] = await Promise.all([
    import("../runtime.ts"),
    import("../core/log.ts"),
  ]);
  const log = createLogger(cfg.log.level);
  const rt = new Runtime({ config: cfg, log });
  await rt.start();
  const embedded = rt.embedded;
  if (embedded) log.info({ url: embedded.url, port: embedded.port }, "embedded MQTT broker listening");
  log.info(
    {
      gatewayId: rt.gatewayId,
      sealing: !!rt.sealer,
      anchoring: !!rt.anchor,
      models: rt.loop?.models.map((m) => m.manifest.name) ?? [],
    },
    "gateway started",
  );
  const fatal = await new Promise<VigilError | undefined>((res) => {
    // Handlers stay installed: a second signal during the shutdown must not kill the process
    // before the group commit is flushed and the store closed.
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) return log.warn({ signal: sig }, "already stopping");
      stopping = true;
      res(undefined);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void rt.fatal.then((e) => {
      stopping = true;
      res(e);
    });
  });
  log.info(rt.statsLine());
  await rt.stop();
  if (fatal) {
    // Exit non-zero so systemd restarts the unit; the restart then refuses the damaged store at
    // open with the same advice, instead of acknowledging frames over it.
    log.fatal(
      { code: fatal.code },
      `the store is damaged (${fatal.shortMessage}); the gateway stopped: run "vigil store check" on it, then "vigil store salvage"`,
    );
    return 1;
  }
  log.info("stopped");
  return 0;
}
