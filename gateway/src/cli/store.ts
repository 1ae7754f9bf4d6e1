/**
 * `vigil store check|salvage`: what a damaged store holds and how to get the intact part out.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { auditBatches } from "../attest/audit.ts";
import { UsageError, VigilError } from "../core/errors.ts";
import { StoreIntegrityError, checkEntries, danglingIndexes } from "../store/integrity.ts";
import { StoreFormatError, StoreUnavailableError, translateLevelError } from "../store/errors.ts";
import { LevelFrameStore } from "../store/level.ts";
import { describeSalvage, salvageProblems, salvageStore } from "../store/salvage.ts";
import { didYouMean, parse, refuseFlags } from "./args.ts";
import type { CliIo } from "./verify.ts";
import { STORE_HELP } from "./help/store.ts";

const stdio: CliIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

export async function storeCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h" || sub === "help") {
    io.out(STORE_HELP);
    return sub ? 0 : 2;
  }
  // Before the flags: "store chek --to NEW_DIR" is a mistyped command, not a misplaced --to.
  if (sub !== "check" && sub !== "salvage")
    throw new UsageError(`unknown store command "${sub}"${didYouMean(sub, ["check", "salvage"])}`);
  const { values } = parse(rest, {
    "data-dir": { type: "string" },
    to: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.out(STORE_HELP);
    return 0;
  }
  if (sub === "check") refuseFlags(values, ["to"], 'applies only to "vigil store salvage"');
  const dataDir = values["data-dir"];
  if (!dataDir) throw new UsageError("--data-dir DIR is required");
  const dir = join(dataDir, "store");
  if (sub === "salvage") {
    if (!values.to) throw new UsageError("--to NEW_DIR is required");
    const r = await salvageStore(dir, join(values.to, "store"));
    io.out(`salvaged ${dir} into ${join(values.to, "store")}\n${describeSalvage(r, values.to)}\n`);
    // The copy is written either way; 1 when it lacks sealed batches (or cannot tell), so a
    // script never puts it in place unread.
    return salvageProblems(r).length > 0 ? 1 : 0;
  }
  return check(dir, io);
}

async function check(dir: string, io: CliIo): Promise<number> {
  const store = new LevelFrameStore({
    dir,
    reserveBytes: 0,
    minFreeBytes: 0,
    create: false,
    inspectOnly: true,
  });
  try {
    await store.open();
  } catch (e) {
    if (!(e instanceof VigilError)) throw e;
    // In use is not damage: no salvage advice for a store the running gateway holds.
    if (/locked by another process/.test(e.shortMessage)) {
      io.out(
        `${dir} is in use by another process (is the gateway running?); stop it, then run check again\n`,
      );
      return 1;
    }
    // No store there at all (a mistyped --data-dir): nothing to salvage either.
    if (/holds no Vigil store/.test(e.shortMessage)) {
      // A store folder given for its data folder (vigil receipt --store takes the store): say so.
      const parent = dirname(dir);
      const hint = existsSync(join(parent, "db", "CURRENT"))
        ? ` (${parent} is a store folder: give the data folder that holds it, --data-dir ${dirname(parent)})`
        : "";
      io.out(`${e.shortMessage}${hint}\n`);
      return 1;
    }
    // A newer store is not damaged: salvage refuses it too; running the newer version is the fix
    // (upgrade audit: check advised a salvage that then refused).
    if (e instanceof StoreFormatError) {
      io.out(`${e.shortMessage}\n`);
      return 1;
    }
    const problems = e instanceof StoreIntegrityError && e.problems.length ? e.problems : [e.shortMessage];
    io.out(`✘ ${dir} cannot be opened safely:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
    io.out(
      `run "vigil store salvage --data-dir ${dir.replace(/\/store$/, "")} --to NEW_DIR" to copy out what is intact\n`,
    );
    return 1;
  }
  try {
    const s = store.stats();
    const { ctx, reads } = store.internals;
    let entries, dangling, batches;
    try {
      entries = await checkEntries(ctx, reads, s.prunedThrough + 1, s.lastIndex, {
        indexes: true,
        hashes: true,
      });
      dangling = await danglingIndexes(ctx, reads);
      batches = await auditBatches(store);
    } catch (e) {
      // A damaged block of the database (LevelDB checks it only when read): the check cannot go
      // on past it, salvage can (storage audit D4: this ended in the generic line that advised
      // running "vigil store check").
      if (e instanceof VigilError && !(e instanceof StoreUnavailableError)) throw e;
      const err = translateLevelError(e, "reading the store");
      // LevelDB's own words ("Corruption: bad block type") are the innermost cause.
      let raw = "";
      for (let c: unknown = err.cause; c instanceof Error; c = c.cause) raw = c.message;
      io.out(
        `✘ ${dir} could not be read to its end: ${err.shortMessage}${raw && !err.shortMessage.includes(raw) ? ` (${raw})` : ""}; what comes after that point was not checked\n`,
      );
      io.out(
        `run "vigil store salvage --data-dir ${dir.replace(/\/store$/, "")} --to NEW_DIR" to copy out what is intact\n`,
      );
      return 1;
    }
    const problems = [...entries.problems, ...dangling, ...batches.problems];
    io.out(
      `${dir}: ${entries.entries} entries (indexes ${s.prunedThrough + 1}..${s.lastIndex}), ${batches.batches} batches ` +
        `(${batches.comparedWithEntries} compared with their entries), anchored through ${s.anchoredThrough}\n`,
    );
    if (!store.hadWatermark)
      io.out(
        "! no watermark: what the store acknowledged is unknown, so a loss before now cannot be seen (the gateway writes one at its next start)\n",
      );
    if (problems.length === 0) {
      io.out("✔ intact\n");
      return 0;
    }
    io.out(`✘ ${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
    return 1;
  } finally {
    await store.close();
  }
}
