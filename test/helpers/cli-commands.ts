/**
 * Every `vigil` command's entry point, for the meta tests that run commands in process (with
 * `--help` appended, so nothing touches a chain, a keystore or a store).
 */
import { accessCommand, tokenCommand } from "../../gateway/src/cli/access.ts";
import { anchorCommand } from "../../gateway/src/cli/anchor.ts";
import { chainCommand } from "../../gateway/src/cli/chain.ts";
import { demoCommand } from "../../gateway/src/cli/demo.ts";
import { doctorCommand } from "../../gateway/src/cli/doctor.ts";
import { initCommand } from "../../gateway/src/cli/init.ts";
import { keysCommand } from "../../gateway/src/cli/keys.ts";
import { receiptCommand } from "../../gateway/src/cli/receipt.ts";
import { releaseCommand } from "../../gateway/src/cli/release.ts";
import { simCommand } from "../../gateway/src/cli/sim.ts";
import { startCommand } from "../../gateway/src/cli/start.ts";
import { statusCommand } from "../../gateway/src/cli/status.ts";
import { storeCommand } from "../../gateway/src/cli/store.ts";
import { updateCommand } from "../../gateway/src/cli/update.ts";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";

/** `vigil NAME …` → its command function (argv after NAME), returning the exit code. */
export const CLI_COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  access: accessCommand,
  anchor: (a) => anchorCommand(a),
  chain: chainCommand,
  demo: demoCommand,
  doctor: doctorCommand,
  init: initCommand,
  keys: keysCommand,
  receipt: (a) => receiptCommand(a),
  release: releaseCommand,
  sim: simCommand,
  start: startCommand,
  status: statusCommand,
  store: (a) => storeCommand(a),
  token: tokenCommand,
  update: updateCommand,
  verify: (a) => verifyCommand(a),
};
