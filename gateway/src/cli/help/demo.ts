/** `vigil demo --help`, in a module of its own so main.ts can print it without loading the command. */
export const DEMO_HELP = `usage: vigil demo [options]

Runs the whole gateway on one machine: a local chain (anvil from node_modules) with the
registry deployed and the gateway key registered, the gateway with its embedded MQTT broker,
store, models, batch sealing and anchoring, and simulated devices — rotating machines
degrading to failure and NASA C-MAPSS engines replayed cycle by cycle — with faults injected.
Prints the live page's URL, then live counters with a progress bar on a terminal (plain
lines otherwise) and every alert with its value beside its threshold, then a reconciliation,
the anchored batches, the receipts of one reading and of the first alert verified on chain, and
what to try next.

  --duration S     how long devices generate data (default 30; the model and firmware updates
                   are shown from 15 on)
  --devices N      rotating machines (default 6); C-MAPSS engines: N/2
  --rate HZ        frames per second per device (default 20)
  --faults SPEC    fault rates (default corrupt=0.01,truncate=0.005,duplicate=0.01,reorder=0.01,garbage=0.01,nan=0.002)
  --seed N         seed of the simulated devices, a whole number in [0, 4294967295]; same seed,
                   same frames and faults (default 7)
  --keep           keep the data directory (store, keystore and its passphrase file, deployment,
                   a config naming them) and print where they are
  -h, --help       this text
`;
