/** `vigil store --help`, in a module of its own so main.ts can print it without loading the command. */
export const STORE_HELP = `usage: vigil store check   --data-dir DIR
       vigil store salvage --data-dir DIR --to NEW_DIR

check     opens the store read-only-in-spirit (it never creates one) and verifies everything
          it must contain: the watermark against the database, every entry (frame CRC-32,
          device id, leaf structure and hash), the (device, seq) and leaf-hash indexes, and
          every sealed batch (packed leaves rebuild the signed root; the head chain links;
          stored entries still hash to their sealed leaves). A store without a watermark is
          reported, not given one. Exit 0 when intact, 1 with one line per problem. Stop the
          gateway first (LevelDB allows one process).
salvage   copies every intact frame, leaf record and batch of DIR's store into NEW_DIR's store
          (a new or empty folder) and says what was lost: damaged entries and entries lost
          inside sealed batches by arrival index, how many of the entries DIR had
          acknowledged are not in the copy (unsealed entries are renumbered), the parts of
          the database that could not be read, and the sealed batches missing from the copy
          (DIR's watermark and batch counter say how many it had). DIR is never modified,
          also when its db folder is a link; the repair works on a copy of DIR/store/db in
          the temporary folder ($TMPDIR, else /tmp), which needs that much free space.
          Entries lost inside a kept sealed batch are
          recorded as lost in the new store (their receipts cannot be exported), so it
          opens. Only the store is copied: the keystore, deployment file and the other
          files the config names stay in DIR. So, with the gateway stopped, move DIR/store
          aside (mv DIR/store DIR/store.damaged, kept for the record), move NEW_DIR/store
          to DIR/store, and start the gateway as before.
          Exit 0 when the copy can go in place like that. Exit 1, with the copy still
          written and the reasons marked ✘, when it lacks sealed batches of DIR (a gateway
          would seal their entries again under seqs the chain may already hold), when how
          many DIR had cannot be learned, when anchor records were lost, when a key range
          could not be read even after LevelDB's repair, or when that repair died (it runs
          in a child process; the copy is then read as DIR's store stands). Then do not
          put it in place
          before reconciling it with the chain: vigil anchor resync on NEW_DIR (see
          "vigil anchor --help").

Options:
  --data-dir DIR   the gateway's data folder (the store is DIR/store)
  --to NEW_DIR     salvage: the new data folder
  -h, --help       this text
`;
