/** The `vigil` command: dispatches to subcommands. */
import { didYouMean } from "./args.ts";
import { reportCommandError } from "./fatal.ts";

const HELP = `usage: vigil <command> [options]

Commands:
  init       write a commented config file (gateway name distinct per box)
  start      run the gateway (ingest from serial and MQTT)
  status     one-screen summary of the running gateway (from its local HTTP endpoint)
  sim        run simulated devices against a gateway
  demo       simulator + gateway on embedded defaults, with live counters
  doctor     check serial ports, broker, disk, models, keystore, chain, registered key, clock
  keys       create, show or rotate the gateway's signing key (encrypted keystore)
  chain      deploy and administer the registry contracts (deploy, verify, register-gateway, …)
  anchor     reconcile the store's anchor records with the chain (anchor resync)
  access     sensors and readers in the registry (register, suspend, resume, revoke, grant, list, …)
  token      mint a reader token (the MQTT password of a dashboard)
  store      check a store's integrity, or salvage what is intact from a damaged one
  release    publish, approve, revoke and list model and firmware releases
  update     the running gateway's update agents: status, check now, retry a failed release
  receipt    export receipts (one frame, or an audit bundle for a device and time range)
  verify     verify a receipt or bundle against a trusted registry, offline and on chain with --rpc
  help       this text
  version    the version of this installation (also --version)

Run "vigil <command> --help" for a command's options.
`;

type Command = (argv: string[]) => Promise<number>;
// Each command is imported when it runs: importing them all up front (ethers, onnxruntime, level,
// aedes, …) made `vigil --help` take seconds (bench/cli.ts measures it).
const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import("./start.ts")).startCommand,
  status: async () => (await import("./status.ts")).statusCommand,
  sim: async () => (await import("./sim.ts")).simCommand,
  demo: async () => (await import("./demo.ts")).demoCommand,
  chain: async () => (await import("./chain.ts")).chainCommand,
  anchor: async () => (await import("./anchor.ts")).anchorCommand,
  access: async () => (await import("./access.ts")).accessCommand,
  token: async () => (await import("./access.ts")).tokenCommand,
  keys: async () => (await import("./keys.ts")).keysCommand,
  receipt: async () => (await import("./receipt.ts")).receiptCommand,
  verify: async () => (await import("./verify.ts")).verifyCommand,
  store: async () => (await import("./store.ts")).storeCommand,
  doctor: async () => (await import("./doctor.ts")).doctorCommand,
  init: async () => (await import("./init.ts")).initCommand,
  release: async () => (await import("./release.ts")).releaseCommand,
  update: async () => (await import("./update.ts")).updateCommand,
};

/**
 * `vigil <command> --help` of commands whose modules load heavy libraries (ethers, the runtime,
 * the config schema and its validator, LevelDB):
 * their help text lives in help/<command>.ts and is printed without importing the command.
 */
const lightHelp: Record<string, () => Promise<string>> = {
  start: async () => (await import("./help/start.ts")).START_HELP,
  status: async () => (await import("./help/status.ts")).STATUS_HELP,
  init: async () => (await import("./help/init.ts")).INIT_HELP,
  store: async () => (await import("./help/store.ts")).STORE_HELP,
  receipt: async () => (await import("./help/receipt.ts")).RECEIPT_HELP,
  demo: async () => (await import("./help/demo.ts")).DEMO_HELP,
  doctor: async () => (await import("./help/doctor.ts")).DOCTOR_HELP,
  keys: async () => (await import("./help/keys.ts")).KEYS_HELP,
  chain: async () => (await import("./help/chain.ts")).CHAIN_HELP,
  verify: async () => (await import("./help/verify.ts")).VERIFY_HELP,
  anchor: async () => (await import("./help/anchor.ts")).ANCHOR_HELP,
  release: async () => (await import("./help/release.ts")).RELEASE_HELP,
  update: async () => (await import("./help/update.ts")).UPDATE_HELP,
  access: async () => (await import("./help/access.ts")).ACCESS_HELP,
  token: async () => (await import("./help/access.ts")).TOKEN_HELP,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === "version" || cmd === "--version" || cmd === "-V") {
    const { fromRoot } = await import("../core/paths.ts");
    const { readFileSync } = await import("node:fs");
    const pkg = JSON.parse(readFileSync(fromRoot("package.json"), "utf8")) as { version: string };
    process.stdout.write(`vigil ${pkg.version} (Node ${process.versions.node})\n`);
    return 0;
  }
  // Own keys only: "constructor" or "toString" is not a command.
  const load = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined;
  if (!load) {
    process.stderr.write(
      `vigil: unknown command "${cmd}"${didYouMean(cmd, Object.keys(commands))}\n\n${HELP}`,
    );
    return 2;
  }
  const help = lightHelp[cmd];
  if (help && rest.length === 1 && (rest[0] === "--help" || rest[0] === "-h")) {
    process.stdout.write(await help());
    return 0;
  }
  try {
    return await (
      await load()
    )(rest);
  } catch (err) {
    // A file the command could not read or write is the operator's to fix: one line, not a trace.
    return reportCommandError(cmd, err, { help: `vigil ${cmd}`, fixes: true });
  }
}

const code = await main(process.argv.slice(2));
// Exit explicitly: a library handle that outlives a failed start (a broker's timer, a client
// reconnecting) must not keep a gateway that refused to start alive, or systemd never restarts it.
// stdout and stderr are synchronous for files, pipes and TTYs on Linux, so nothing written is lost.
process.exit(code);
