/** The `vigil` command: dispatches to subcommands. */
import { VigilError } from "../core/errors.ts";
import { chainCommand } from "./chain.ts";
import { demoCommand } from "./demo.ts";
import { doctorCommand } from "./doctor.ts";
import { initCommand } from "./init.ts";
import { keysCommand } from "./keys.ts";
import { receiptCommand } from "./receipt.ts";
import { verifyCommand } from "./verify.ts";
import { simCommand } from "./sim.ts";
import { startCommand } from "./start.ts";
import { storeCommand } from "./store.ts";
import { didYouMean } from "./args.ts";
import { fatalLine } from "./fatal.ts";

const HELP = `usage: vigil <command> [options]

Commands:
  init       write a commented config file (gateway name distinct per box)
  start      run the gateway (ingest from serial and MQTT)
  sim        run simulated devices against a gateway
  demo       simulator + gateway on embedded defaults, with live counters
  doctor     check serial ports, broker, disk, models, keystore, chain, registered key, clock
  keys       create, show or rotate the gateway's signing key (encrypted keystore)
  chain      deploy and administer the registry contracts (deploy, verify, register-gateway, …)
  store      check a store's integrity, or salvage what is intact from a damaged one
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
  receipt: (argv) => receiptCommand(argv),
  verify: (argv) => verifyCommand(argv),
  store: (argv) => storeCommand(argv),
  doctor: doctorCommand,
  init: initCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(
      `vigil: unknown command "${cmd}"${didYouMean(cmd, Object.keys(commands))}\n\n${HELP}`,
    );
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof VigilError) {
      const line = e.code === "USAGE" ? `${e.shortMessage} (see "vigil ${cmd} --help")` : fatalLine(e);
      process.stderr.write(`vigil ${cmd}: ${line}\n`);
      return e.code === "USAGE" ? 2 : 1;
    }
    throw e;
  }
}

const code = await main(process.argv.slice(2));
// Exit explicitly: a library handle that outlives a failed start (a broker's timer, a client
// reconnecting) must not keep a gateway that refused to start alive, or systemd never restarts it.
// stdout and stderr are synchronous for files, pipes and TTYs on Linux, so nothing written is lost.
process.exit(code);
