/** The `vigil` command: dispatches to subcommands. */
import { VigilError } from "../core/errors.ts";

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
// Each command is imported when it runs: importing them all up front (ethers, onnxruntime, level,
// aedes, …) made `vigil --help` take seconds (bench/cli.ts measures it).
const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import("./start.ts")).startCommand,
  sim: async () => (await import("./sim.ts")).simCommand,
  demo: async () => (await import("./demo.ts")).demoCommand,
  chain: async () => (await import("./chain.ts")).chainCommand,
  keys: async () => (await import("./keys.ts")).keysCommand,
  receipt: async () => (await import("./receipt.ts")).receiptCommand,
  verify: async () => (await import("./verify.ts")).verifyCommand,
  store: async () => (await import("./store.ts")).storeCommand,
  release: async () => (await import("./release.ts")).releaseCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  const load = commands[cmd];
  if (!load) {
    process.stderr.write(`vigil: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await (
      await load()
    )(rest);
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
