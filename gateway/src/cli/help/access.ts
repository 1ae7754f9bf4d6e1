/**
 * `vigil access --help` and `vigil token --help`, in a module of their own so main.ts can print them
 * without loading the command (and ethers).
 */
export const ACCESS_HELP = `usage: vigil access <command> [options]

commands:
  sensor register   register a sensor node under a gateway (caller: the gateway's site operator)
  sensor suspend    suspend a sensor (at the next refresh its frames are NACKed REVOKED_DEVICE with
                    ingest.admission "registry", and its MQTT logins refused with mqtt.embedded.auth
                    "registry"; a gateway with neither does not act on it)
  sensor resume     resume a suspended sensor
  sensor revoke     revoke a sensor for good (acted on as suspend)
  reader grant      let a reader (an address) read a gateway or a whole site for N days
  reader revoke     withdraw a reader's grant (with mqtt.embedded.auth "registry" it is disconnected
                    at the next refresh; an external Mosquitto follows at its next export)
  list              what the registry says about a gateway: status, sensors, readers
  device-password   create a device's MQTT secret, append its hash to a password file, print it once
  export-mosquitto  write a Mosquitto password file, ACL file and dynamic-security config from the registry; SIGHUP a running broker
  token             mint a reader token (the MQTT password of a dashboard); also "vigil token"

options:
  --deployment FILE   deployment file (chain id, registry, deployment block)
  --rpc URL           JSON-RPC endpoint
  --key-file FILE     the caller's private key (mode 0600), or VIGIL_CHAIN_KEY (default: anvil
                      dev account #0 — local chains only)
  --gateway-id HEX32  the gateway (bytes32)
  --sensor HEX8       the sensor's device id (8 hex digits)
  --public-key HEX    sensor key as registered (20-byte address or 64-byte P-256 x‖y; default none)
  --key-type TYPE     secp256k1 (default) or p256 (with --public-key)
  --reader ADDR       the reader's address
  --site NAME|HEX32   a site instead of a gateway (reader grant/revoke)
  --days N            grant length in days (default 30)
  --reader-key-file FILE  the reader's private key, hex, mode 0600 (token)
  --hours H           token lifetime in hours, at most 24 (default 12)
  --file FILE         password file (device-password)
  --password-file FILE  device password file (export-mosquitto)
  --out-dir DIR       where export-mosquitto writes vigil.passwd, vigil.acl and vigil.dynsec.json
  --pid PID           a running Mosquitto to send SIGHUP (reload) after writing
  --gateway-user NAME also export NAME's line of --password-file as the gateway's own user (the
                      user the running gateway syncs the dynamic-security plugin as)
  --site-name NAME    topic level of the site (default site-1); --gateway-name NAME (default: this
                      machine's default attest.gatewayName, gw-<12 hex digits>)
  -h, --help          this text
`;

export const TOKEN_HELP = `usage: vigil token --deployment FILE --gateway-id HEX32 --reader-key-file FILE [--hours H]

Mints a reader token: the MQTT password of a dashboard (gateway/src/access/README.md), signed by
the reader's key, valid for the gateway's topics while the registry grants the reader access.
Prints it as one JSON line. No chain access is needed (the deployment file gives chain and registry).

options:
  --deployment FILE       deployment file (chain id, registry)
  --gateway-id HEX32      the gateway whose topics the token opens
  --reader-key-file FILE  the reader's private key, hex, mode 0600
  --hours H               lifetime in hours, at most 24 (default 12)
  -h, --help              this text
`;
