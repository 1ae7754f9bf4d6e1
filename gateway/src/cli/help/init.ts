/** `vigil init --help`, in a module of its own so main.ts can print it without loading the command. */
export const INIT_HELP = `usage: vigil init [options]

Writes a commented config file (JSON with // comments; every key is optional, the README's
"Configuration" lists all of them) and prints the next steps.

  -o, --out FILE       file to write (default vigil.config.json)
  --name NAME          gateway name (default gw-… derived from this machine's id, distinct per box)
  --site NAME          site name (default site-1)
  --data-dir DIR       store, keystore and deployment folder (default .vigil)
  --serial PATH        a serial port to read (repeatable); prefer /dev/serial/by-id/ names
  --rpc URL            chain endpoint for anchoring
  --deployment FILE    deployment file from "vigil chain deploy" (relative to --data-dir)
  --force              overwrite FILE
  -h, --help           this text
`;
