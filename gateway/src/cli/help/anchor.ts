/** `vigil anchor --help`, in a module of its own so main.ts can print it without loading the command. */
export const ANCHOR_HELP = `usage: vigil anchor resync [-c FILE] [--data-dir DIR] [--deployment FILE] [--rpc URL ...]
                          [--gateway-id HEX32] [--from-seq N] [--dry-run] [--chain-reset]
                          [--json]

Reconciles the gateway store's anchor records with the registry, for what the gateway does not
repair by itself: a reorg deeper than the finality depth, a chain that was reset, a store
restored from a backup. It reads the chain (no transaction is sent) and:
  - records the chain contradicts (a transaction that is gone or moved) are pointed at the
    chain's BatchAnchored event of the same header, block hash and finality refreshed;
  - batches recorded as anchored that the registry does not hold are un-anchored: the gateway
    anchors them again, unchanged (same seq, same head), when it runs. Not while the endpoint
    is below a block those records name: if it has an older anchor's block as recorded, it is
    a lagging replica (or a reorg left it shorter), and if no recorded block can be compared,
    a lag and a reset chain look alike. Both are reported as a CONFLICT: wait, use a synced
    endpoint, or pass --chain-reset;
  - batches the registry holds but the store did not record are recorded (header hash checked);
  - anything else (another header under a seq, more batches on chain than sealed here) is
    reported as a CONFLICT and left alone.
Every change is printed. Stop the gateway first (the store is opened exclusively).

options:
  -c, --config FILE     the gateway's JSON config (data dir, chain.*, attest.gateway*)
  --data-dir DIR        the gateway's data directory (holds store/)
  --deployment FILE     deployment file (default: chain.deployment of the config)
  --rpc URL             JSON-RPC endpoint (repeatable; default: chain.rpcUrl / chain.rpcUrls)
  --gateway-id HEX32    the gateway id (default: from the config)
  --from-seq N          check records against the chain from batch N (default: the first
                        anchor not final yet, and at least the last 100)
  --dry-run             say what would change, change nothing
  --chain-reset         the chain was reset (a new dev chain): un-anchor the batches the
                        registry does not hold even where the endpoint is below their blocks
  --json                print the report as JSON
  -h, --help            this text

Exit status: 0 no conflicts (the store agrees with the chain now; with --dry-run, the changes
listed are still to be made), 1 conflicts remain or the chain could not be read, 2 usage error.
`;
