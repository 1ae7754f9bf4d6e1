/** `vigil start --help`, in a module of its own so main.ts can print it without loading the command. */
export const START_HELP = `usage: vigil start [options]

Runs the gateway: ingest from serial ports and MQTT, store durably (acknowledging only
synced frames), run the models and publish alerts, seal signed batches, anchor them.

  -c, --config FILE      JSON config (see README "Configuration"); flags override it
  --data-dir DIR         store, keystore and deployment file location (default .vigil)
  --rpc URL              anchor batches on this chain (needs chain.deployment and a sender key)
  --deployment FILE      deployment file from "vigil chain deploy" (EIP-712 domain, registry);
                         relative to the current folder (chain.deployment in the config: to dataDir)
  --serial PATH          add a serial port (repeatable), e.g. /dev/ttyUSB0
  --baud N               baud rate for --serial ports (default 115200)
  --mqtt-port N          embedded broker port (default 1883; 0 = any free port,
                         logged as mqtt in "gateway started")
  --mqtt-host HOST       embedded broker address (default 127.0.0.1)
  --mqtt-auth MODE       none (loopback development) | registry (device passwords, reader tokens; default none)
  --mqtt-password-file FILE
                         device password file (mosquitto_passwd $7$ format; "vigil access device-password"),
                         relative to the current folder
  --mqtt-insecure        allow a non-loopback --mqtt-host with --mqtt-auth none (anyone on the network may publish)
  --admission MODE       open | registry: only sensors registered and active under this gateway may send
  --no-embedded          do not run the embedded broker
  --mqtt-url URL         also subscribe to an external broker (mqtts://host:8883); its credentials
                         go in the config (mqtt.username, mqtt.password): a flag is visible in ps
  --stats-ms MS          counter log interval: 0 = never, else ≥ 100 (default 5000)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --log-format FORMAT    json|pretty|auto: JSON lines, human-readable, or pretty on a terminal (default auto)
  --http-port N          live page and /metrics port (default 9479; 0 = any free port,
                         logged as page in "gateway started")
  --no-http              do not serve the live page, /metrics, /healthz and /readyz
  -h, --help             this text

Stops cleanly on SIGINT/SIGTERM. SIGHUP (systemctl reload vigil) re-reads the config file and
applies log.level, and ingest.allow and ingest.revoked when ingest.admission is "open", at once;
other changed settings are named in the log as needing a restart. An invalid file is logged and
the running config kept.
`;
