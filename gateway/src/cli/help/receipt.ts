/** `vigil receipt --help`, in a module of its own so main.ts can print it without loading the command. */
export const RECEIPT_HELP = `usage: vigil receipt --store DIR --device ID [--from TIME] [--to TIME] [--out FILE]
       vigil receipt --store DIR --device ID --seq N [--out FILE]
       vigil receipt --store DIR --leaf HASH [--out FILE]

Exports receipts (gateway/src/attest/RECEIPTS.md) from a gateway's store directory.
Without --seq: an audit bundle (vigil-bundle/1) of every sealed frame of the device whose
device timestamp lies in [--from, --to]; frames not sealed yet are counted, not exported.
With --seq: the receipt (vigil-receipt/1) of one frame (extended sequence number).
With --leaf: the receipt of one INFERENCE, ALERT or SENSOR_FAULT leaf, by its hash: an alert or
sensor-fault payload's receipt.leaf (or an alert's receipt.inferenceLeaf). Alerts and sensor
faults are published before their leaf is sealed;
until the next batch is sealed this fails with RECEIPT_NOT_SEALED.

Options:
  --store DIR     the store directory of the gateway (holds db/); while the gateway runs,
                  a snapshot of it is read (table files hard-linked, the rest copied) from
                  DIR/../.vigil-snapshot-<pid>@<host>-*, removed when the export ends or
                  Ctrl-C/SIGTERM stops it (exit 130/143); one a SIGKILL left is removed by
                  the next snapshot or gateway start, once its process no longer runs
  --device ID     device id: 8 hex digits (0000002a) or a decimal number of at most 7 digits
                  (8 digits are always read as hex)
  --from TIME     ISO 8601 time or microseconds since the epoch (default: beginning)
  --to TIME       ISO 8601 time or microseconds since the epoch (default: now)
  --seq N         one frame's extended sequence number
  --leaf HASH     one INFERENCE, ALERT or SENSOR_FAULT leaf: 0x + 64 hex digits (no --device
                  needed)
  --out FILE      write to FILE (default: standard output)
  -h, --help      this text
`;
