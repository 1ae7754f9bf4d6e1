/** `vigil doctor --help`, in a module of its own so main.ts can print it without loading the command. */
export const DOCTOR_HELP = `usage: vigil doctor [-c FILE] [--json]

Checks, one line each (ok / FAIL / skip):
  config      the configuration loads and validates
  serial      each serial port exists, is a character device, and is readable and writable
  broker      the embedded broker's port is free or answered by an MQTT broker; the external
              broker (mqtt.url) answers CONNECT within mqtt.connectTimeoutMs
  http        the HTTP endpoint's port (http.port) is free or answered by a gateway's /healthz
  disk        the data folder's store (or the nearest existing folder above it) is writable by
              this user, and free space on its file system is at least store.minFreeBytes +
              store.reserveBytes
  models      every model file matches its manifest's sha256 and loads (models.precision's
              choice), and its other precisions' files match too
  keystore    the keystore exists, is mode 0600, and the passphrase unlocks it
  deployment  the deployment file reads as vigil-deployment/1
  rpc         the RPC endpoint answers and is the deployment's chain id
  registry    the gateway is registered and active, with the local key as its key
  sender      the account paying anchor gas has a balance
  clock       the system clock is not behind the chain's latest block (a Pi without RTC
              before NTP sync); more than 30 s behind fails

Options:
  -c, --config FILE   gateway config (default: built-in defaults)
  --json              one JSON object: {"ok": bool, "checks": [{name, status, detail}]}
  -h, --help          this text

Exit status: 0 every check passed or was skipped, 1 a check failed, 2 usage error.
`;
