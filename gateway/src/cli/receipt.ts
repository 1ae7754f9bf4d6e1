/**
 * `vigil receipt --store DIR --device ID [--from TIME] [--to TIME] [--seq N] [--out FILE]`: exports
 * receipts from a gateway's store: one receipt (`--seq`) or an audit bundle of a device's
 * frames in a time range, which a third party checks with `vigil verify` and an RPC URL.
 * `--leaf HASH` exports the receipt of an INFERENCE, ALERT or SENSOR_FAULT leaf (an alert's or a
 * sensor fault's `receipt.leaf`).
 *
 * LevelDB allows one process per database: while the gateway runs, it reads a snapshot of the
 * store (store/snapshot.ts), removed when the export ends, also when SIGINT/SIGTERM stops it.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError, VigilError } from "../core/errors.ts";
import { parseDeviceIdHex } from "../protocol/frame.ts";
import { StoreUnavailableError } from "../store/errors.ts";
import { LevelFrameStore } from "../store/level.ts";
import { removeOwnSnapshotsSync, snapshotStore, type StoreSnapshot } from "../store/snapshot.ts";
import { ReceiptBuilder } from "../attest/receipt.ts";
import { parse } from "./args.ts";
import type { CliIo } from "./verify.ts";
import { RECEIPT_HELP } from "./help/receipt.ts";

const stdio: CliIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

function parseDevice(s: string): number {
  const hex = parseDeviceIdHex(s);
  if (hex !== undefined) return hex;
  if (/^\d+$/.test(s) && Number(s) <= 0xffffffff) return Number(s);
  throw new UsageError(`--device must be 8 hex digits or a decimal u32, got "${s}"`);
}

function parseTime(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (/^\d+$/.test(s)) return Number(s);
  const ms = Date.parse(s);
  if (Number.isNaN(ms))
    throw new UsageError(`--${name} must be an ISO 8601 time or microseconds since the epoch, got "${s}"`);
  return ms * 1000;
}

export async function receiptCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  let store: LevelFrameStore | undefined;
  let snapshot: StoreSnapshot | undefined;
  let storeDir: string | undefined;
  try {
    const { values } = parse(argv, {
      store: { type: "string" },
      device: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      seq: { type: "string" },
      leaf: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      io.out(RECEIPT_HELP);
      return 0;
    }
    if (!values.store) throw new UsageError("--store DIR is required");
    storeDir = values.store;
    if (values.leaf !== undefined) {
      if (!/^(0x)?[0-9a-f]{64}$/i.test(values.leaf))
        throw new UsageError(`--leaf must be 32 bytes of hex, got "${values.leaf}"`);
      if (["seq", "device", "from", "to"].some((f) => values[f as "seq"] !== undefined))
        throw new UsageError("--leaf cannot be combined with --device, --seq, --from or --to");
      ({ store, snapshot } = await openReadOnly(values.store, io));
      const doc = await new ReceiptBuilder(store).forLeafHash(values.leaf);
      const text = JSON.stringify(doc, null, 2) + "\n";
      if (values.out) await writeFile(values.out, text);
      else io.out(text);
      return 0;
    }
    if (!values.device) throw new UsageError("--device ID is required");
    const device = parseDevice(values.device);
    const from = parseTime("from", values.from);
    const to = parseTime("to", values.to);
    if (values.seq !== undefined && (values.from !== undefined || values.to !== undefined))
      throw new UsageError("--seq names one frame: it cannot be combined with --from or --to");
    if (values.seq !== undefined && !/^\d+$/.test(values.seq))
      throw new UsageError(`--seq must be a non-negative integer, got "${values.seq}"`);
    ({ store, snapshot } = await openReadOnly(values.store, io));
    const rb = new ReceiptBuilder(store);
    const doc =
      values.seq !== undefined
        ? await rb.forSeq(device, Number(values.seq))
        : await rb.bundle(device, from, to);
    const text = JSON.stringify(doc, null, 2) + "\n";
    if (values.out) await writeFile(values.out, text);
    else io.out(text);
    const marked = ("receipts" in doc ? doc.receipts : [doc]).filter((r) => r.frame.clockUnverified).length;
    if ("receipts" in doc)
      io.err(
        `exported ${doc.receipts.length} receipts${doc.unsealed ? ` (${doc.unsealed} frames not sealed yet)` : ""}\n`,
      );
    if (marked > 0)
      io.err(
        `${"receipts" in doc ? `${marked} of them were` : "the frame was"} stored before the gateway clock was known good ` +
          `(frame.clockUnverified): receivedUs is that clock's reading and the timestamp was not checked\n`,
      );
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      // One line, as every command's usage error (fatal.ts reportCommandError): not the help.
      io.err(`vigil receipt: ${e.shortMessage} (see "vigil receipt --help")\n`);
      return 2;
    }
    if (e instanceof VigilError) {
      // A data folder given for its store (vigil store takes the data folder): name the right one.
      const hint =
        storeDir !== undefined &&
        /holds no Vigil store/.test(e.shortMessage) &&
        existsSync(join(storeDir, "store", "db", "CURRENT"))
          ? ` (${storeDir} is a gateway's data folder: its store is --store ${join(storeDir, "store")})`
          : "";
      io.err(`vigil receipt: ${e.shortMessage}${hint}\n`);
      return 1;
    }
    throw e;
  } finally {
    await store?.close();
    await snapshot?.remove();
  }
}

/**
 * Opens the store for reading (no reserve file, no free-space refusal, never created). When the
 * running gateway holds it, reads a snapshot instead (store/snapshot.ts), so an auditor does not
 * have to stop production.
 */
async function openReadOnly(
  dir: string,
  io: CliIo,
): Promise<{ store: LevelFrameStore; snapshot: StoreSnapshot | undefined }> {
  const opts = { reserveBytes: 0, minFreeBytes: 0, create: false };
  const store = new LevelFrameStore({ dir, ...opts });
  try {
    await store.open();
    return { store, snapshot: undefined };
  } catch (e) {
    if (!(e instanceof StoreUnavailableError && /locked/.test(e.shortMessage))) throw e;
  }
  const unguard = removeOnSignal(dir, io);
  let taken: StoreSnapshot;
  try {
    taken = await snapshotStore(dir);
  } catch (e) {
    unguard();
    throw e;
  }
  const snapshot: StoreSnapshot = {
    dir: taken.dir,
    remove: () => taken.remove().finally(unguard),
  };
  try {
    const copy = new LevelFrameStore({ dir: snapshot.dir, ...opts });
    await copy.open();
    io.err(
      `the store is in use (gateway running): reading a snapshot taken at ${new Date().toISOString()}\n`,
    );
    return { store: copy, snapshot };
  } catch (e) {
    await snapshot.remove();
    throw e;
  }
}

/**
 * Until the undo it returns is called: SIGINT/SIGTERM (Ctrl-C, kill PID) remove this process's
 * snapshot of `storeDir`, one being taken included, then end the process by that signal again (as
 * without a handler: exit status 130 or 143; process.exit would wait for a blocked write, such as
 * one to a FIFO nobody reads). Without it the signal ended the process before the `finally` that
 * removes the snapshot, whose hard links then kept deleted table files on disk (a SIGKILL still
 * does: the next snapshot or gateway start sweeps it, store/snapshot.ts).
 */
function removeOnSignal(storeDir: string, io: CliIo): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    removeOwnSnapshotsSync(storeDir);
    io.err(`vigil receipt: stopped by ${signal}; its snapshot of the store removed\n`);
    undo(); // no listener left: the signal's default action ends the process
    process.kill(process.pid, signal);
  };
  const undo = (): void => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return undo;
}
