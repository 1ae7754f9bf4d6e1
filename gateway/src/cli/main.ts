/** The `vigil` command: dispatches to subcommands. */
import { VigilError } from "../core/errors.ts";
import { chainCommand } from "./chain.ts";
import { demoCommand } from "./demo.ts";
import { keysCommand } from "./keys.ts";
import { releaseCommand } from "./release.ts";
import { receiptCommand } from "./receipt.ts";
import { verifyCommand } from "./verify.ts";
import { simCommand } from "./sim.ts";
import { startCommand } from "./start.ts";
import { storeCommand } from "./store.ts";

const HELP = `usage: vigil <command> [options]

Commands:
  start      run the gateway (ingest from serial and MQTT)
  sim        run simulated devices against a gateway
  demo       simulator + gateway on embedded defaults, with live counters
  keys       create or show the gateway's signing key (encrypted keystore)
  chain      deploy and administer the registry contracts (deploy, verify, register-gateway, …)
  store      check a store's integrity, or salvage what is intact from a damaged one
  release    publish, approve, revoke and list model and firmware releases
  receipt    export receipts (one frame, or an audit bundle for a device and time range)
  verify     verify a receipt or bundle offline, and on chain with --rpc
  help       this text

Run "vigil <command> --help" for a command's options.
`;

type Command = (argv: string[]) => Promise<number>;
const commands: Record<string, Command> = {
  start: startCommand,
  sim: simCommand,
  demo: demoCommand,
  chain: chainCommand,
  keys: keysCommand,
  release: releaseCommand,
  receipt: (argv) => receiptCommand(argv),
  verify: (argv) => verifyCommand(argv),
  store: (argv) => storeCommand(argv),
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(`vigil: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof VigilError) {
      process.stderr.write(`vigil ${cmd}: ${e.shortMessage}\n`);
      return e.code === "USAGE" ? 2 : 1;
    }
    throw e;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
