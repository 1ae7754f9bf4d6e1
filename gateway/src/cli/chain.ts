/**
 * `vigil chain …`: deploy the registry contracts and manage gateways from the command line.
 *
 *   vigil chain deploy --rpc URL [--key-file FILE] [--out FILE] [--admin ADDR]
 *                      [--admin-delay SECONDS] [--threshold M] [--max-release-size BYTES]
 *   vigil chain verify --deployment FILE --rpc URL
 *   vigil chain register-gateway --deployment FILE --rpc URL [--key-file FILE] --gateway-id HEX32
 *                      --site NAME|HEX32 [--key-type TYPE] (--device-key-file FILE | --public-key HEX)
 *                      [--metadata URI]
 *   vigil chain grant-operator --deployment FILE --rpc URL [--key-file FILE] --site NAME|HEX32 --account ADDR
 *
 * Sending keys come from `--key-file` (mode 0600) or VIGIL_CHAIN_KEY, never from the command line;
 * anvil's well-known account #0 is used only when neither is given AND the chain is a local
 * development chain (chain/sender-key.ts).
 */
import { accessSync, constants, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { VigilRegistryArtifact, VigilReleasesArtifact } from "../../../contracts/artifacts/index.ts";
import { importKey, registrationPublicKey, type KeyType } from "../chain/keys.ts";
import { ANVIL_DEV_KEYS } from "../chain/anvil.ts";
import {
  deployVigil,
  readDeploymentFile,
  releasesOf,
  verifyDeployedCode,
  type Deployment,
  type LoadedDeployment,
} from "../chain/deploy.ts";
import type { Hex } from "../core/hex.ts";
import { ChainError, translateEthersError } from "../chain/errors.ts";
import { EthersRegistryClient, probeProvider } from "../chain/ethers-client.ts";
import {
  assertKeyAllowed,
  isLocalDevChain,
  loadSenderKey,
  readKeyFile,
  SenderKeyError,
} from "../chain/sender-key.ts";
import { siteIdOf } from "../config/gateway-id.ts";
import { writeFileAtomic } from "../core/atomic-file.ts";
import { fileError, UsageError, VigilError, redactUrl } from "../core/errors.ts";
import { addressFlag, int, parse, rpcFlag, runSubcommand } from "./args.ts";
import { CHAIN_HELP as HELP } from "./help/chain.ts";

const KEY_HELP = `  --key-file FILE           file with the sending account's hex private key (mode 0600); or set
                            VIGIL_CHAIN_KEY. Without either, anvil's development account #0 is used,
                            only on a local development chain (chain id 31337/1337 on a loopback
                            address); well-known development keys are refused on any other chain`;

const DEPLOY_HELP = `usage: vigil chain deploy --rpc URL [--key-file FILE] [--out FILE [--force]] [--admin ADDR]
                         [--admin-delay SECONDS] [--threshold M] [--max-release-size BYTES]

Deploys VigilRegistry and VigilReleases from the committed artifacts, checks that the code on
chain is the artifacts' code, and writes a deployment file (vigil-deployment/1: chain id,
addresses, deployment block — where every log query of the gateway and of "vigil verify"
starts).

options:
  --rpc URL                 JSON-RPC endpoint (anvil: http://127.0.0.1:8545)
${KEY_HELP}
  --out FILE                deployment file to write (default: deployment.json); an existing
                            file is refused before anything is deployed
  --force                   replace an existing --out file
  --admin ADDR              default admin (default: the deployer)
  --admin-delay SECONDS     two-step admin handover delay (default: 172800)
  --threshold M             release approvals needed (default: 2)
  --max-release-size BYTES  release size cap (default: 536870912)
  -h, --help                this text
`;

const VERIFY_HELP = `usage: vigil chain verify --deployment FILE --rpc URL

Checks that the RPC serves the deployment's chain and that the code at the deployment's
VigilRegistry and VigilReleases addresses is the committed artifacts' runtime code
(immutables masked). Exit 0 when it matches, 1 when it does not.

options:
  --deployment FILE         deployment file written by "vigil chain deploy"
  --rpc URL                 JSON-RPC endpoint of that chain
  -h, --help                this text
`;

const REGISTER_HELP = `usage: vigil chain register-gateway --deployment FILE --rpc URL [--key-file FILE]
         --gateway-id HEX32 --site NAME|HEX32
         [--key-type TYPE] (--device-key-file FILE | --public-key HEX) [--metadata URI]

Registers a gateway's signing key at a site in the deployment's VigilRegistry. The sending
account must hold the site's operator role ("vigil chain grant-operator").

options:
  --deployment FILE         deployment file written by "vigil chain deploy"
  --rpc URL                 JSON-RPC endpoint of that chain
${KEY_HELP}
  --gateway-id HEX32        the gateway id (0x + 64 hex digits; the gateway's attest.gatewayId, or
                            keccak256("vigil-gateway:" + attest.gatewayName))
  --site NAME|HEX32         the site: a name (hashed as keccak256("site:" + NAME)) or its 0x id
  --device-key-file FILE    the gateway's raw hex private key (mode 0600): its public key is
                            registered, the key itself never leaves this machine
  --key-type TYPE           secp256k1 (default) or p256, for --device-key-file and --public-key
  --public-key HEX          or give the public key directly: 20-byte address (secp256k1) or
                            64-byte x‖y (with --key-type p256)
  --metadata URI            free metadata URI (default: empty)
  -h, --help                this text
`;

const GRANT_HELP = `usage: vigil chain grant-operator --deployment FILE --rpc URL [--key-file FILE]
         --site NAME|HEX32 --account ADDR

Grants the operator role of a site (register, rotate, suspend and revoke its gateways) to an
account. The sending account must be the registry's default admin.

options:
  --deployment FILE         deployment file written by "vigil chain deploy"
  --rpc URL                 JSON-RPC endpoint of that chain
${KEY_HELP}
  --site NAME|HEX32         the site: a name (hashed as keccak256("site:" + NAME)) or its 0x id
  --account ADDR            the account that becomes an operator of the site
  -h, --help                this text
`;

/**
 * The sending key: --key-file (0600) or VIGIL_CHAIN_KEY; on a local development chain only,
 * anvil's account #0 when neither is given (said on stderr, prefixed with `command`, the command
 * that was run: `vigil chain deploy`, `vigil access sensor register`, …). Refuses --key (argv is
 * public) and well-known development keys on other chains.
 */
function sendingKey(
  values: { key?: string | undefined; "key-file"?: string | undefined },
  chainId: bigint,
  rpcUrl: string,
  command: string,
): string {
  if (values.key !== undefined)
    throw new UsageError(
      "private keys are not accepted on the command line (every user sees them in ps, and they stay in shell history): use --key-file FILE (mode 0600) or VIGIL_CHAIN_KEY",
    );
  const what = values["key-file"] ? `--key-file ${values["key-file"]}` : "VIGIL_CHAIN_KEY";
  let key = values["key-file"]
    ? readKeyFile(values["key-file"], what)
    : loadSenderKey(null, "VIGIL_CHAIN_KEY");
  if (!key) {
    if (!isLocalDevChain(chainId, [rpcUrl]))
      throw new UsageError(
        `no sending key: give --key-file FILE or set VIGIL_CHAIN_KEY (the development key is used only on a local development chain; chain ${chainId} at ${redactUrl(rpcUrl)} is not one)`,
      );
    process.stderr.write(`${command}: no --key-file: using anvil's development account #0 (local chain)\n`);
    key = ANVIL_DEV_KEYS[0];
  }
  assertKeyAllowed(key, chainId, [rpcUrl], what);
  return key;
}

async function chainIdOf(rpcUrl: string): Promise<bigint> {
  const probe = probeProvider(rpcUrl);
  try {
    return BigInt((await probe.send("eth_chainId", [])) as string);
  } catch (e) {
    throw translateEthersError(e, rpcUrl, []);
  } finally {
    probe.destroy();
  }
}

export function readDeployment(path: string | undefined): LoadedDeployment {
  if (!path) throw new UsageError("--deployment FILE is required");
  return readDeploymentFile(path);
}

async function deploy(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    rpc: { type: "string" },
    key: { type: "string" },
    "key-file": { type: "string" },
    out: { type: "string", default: "deployment.json" },
    force: { type: "boolean" },
    admin: { type: "string" },
    "admin-delay": { type: "string" },
    threshold: { type: "string" },
    "max-release-size": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    process.stdout.write(DEPLOY_HELP);
    return 0;
  }
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  rpcFlag("rpc", values.rpc);
  // A missing key file is the first thing to say, before the RPC is tried.
  const keyFile = (values as { "key-file"?: string })["key-file"];
  if (keyFile && !existsSync(keyFile))
    throw new SenderKeyError("KEY_MISSING", `--key-file ${keyFile} does not exist`);
  // Everything that can be refused is refused before anything is deployed (and paid for).
  // Bounded by the constructors' types (VigilRegistry: uint48 delay; VigilReleases: uint16
  // threshold ≥ 1, uint64 size): a value out of range only failed once the registry was deployed.
  const opts = {
    adminDelaySeconds: int("admin-delay", values["admin-delay"], 172_800, 0, 2 ** 48 - 1),
    approvalThreshold: int("threshold", values.threshold, 2, 1, 2 ** 16 - 1),
    maxReleaseSize: BigInt(
      int("max-release-size", values["max-release-size"], 512 * 1024 * 1024, 1, Number.MAX_SAFE_INTEGER),
    ),
    ...(values.admin !== undefined ? { admin: addressFlag("admin", values.admin) } : {}),
  };
  const out = values.out ?? "deployment.json";
  if (existsSync(out) && !values.force)
    throw new VigilError(
      "DEPLOYMENT_EXISTS",
      `${out} exists (the deployment gateways and auditors trust?): choose another --out, or --force to replace it`,
    );
  try {
    accessSync(dirname(resolve(out)), constants.W_OK);
  } catch (e) {
    throw fileError(e, "write a deployment file in") ?? e;
  }
  // Fail fast (and once) on an unreachable endpoint; the chain id decides which keys are allowed.
  const chainId = await chainIdOf(values.rpc);
  const provider = new JsonRpcProvider(values.rpc, chainId, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 100;
  try {
    const signer = new NonceManager(
      new Wallet(sendingKey(values, chainId, values.rpc, "vigil chain deploy"), provider),
    );
    let d: Deployment;
    try {
      d = await deployVigil(signer, opts);
    } catch (e) {
      throw translateEthersError(e, values.rpc, []);
    }
    // The addresses first: if the file cannot be written, the deployment is not lost with it.
    process.stdout.write(
      `deployed on chain ${d.chainId} (${redactUrl(values.rpc)}) at block ${d.deployBlock}\n` +
        `  VigilRegistry ${d.contracts.VigilRegistry.address}\n` +
        `  VigilReleases ${d.contracts.VigilReleases.address}\n` +
        `  runtime code verified against the artifacts\n`,
    );
    await writeDeploymentFile(out, d, values.force === true);
    process.stdout.write(`wrote ${out}\n`);
    return 0;
  } finally {
    provider.destroy();
  }
}

/**
 * Writes the deployment file of contracts just deployed, atomically. Without `replace`, a file
 * that appeared at `out` since the check before deploying is kept (EEXIST). Exported for tests.
 * @throws VigilError FILE_ACCESS saying the contracts are deployed all the same.
 */
export async function writeDeploymentFile(out: string, d: Deployment, replace: boolean): Promise<void> {
  try {
    await writeFileAtomic(out, `${JSON.stringify(d, null, 2)}\n`, { exclusive: !replace });
  } catch (e) {
    const f = fileError(e);
    if (!f) throw e;
    throw new VigilError(
      "FILE_ACCESS",
      `${f.shortMessage}; the contracts ARE deployed (addresses above): write the deployment file by hand or re-run with another --out only if you mean a new deployment`,
      { cause: e },
    );
  }
}

async function verify(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    deployment: { type: "string" },
    rpc: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return 0;
  }
  const d = readDeployment(values.deployment);
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  rpcFlag("rpc", values.rpc);
  const chainId = (await chainIdOf(values.rpc)).toString();
  const provider = new JsonRpcProvider(values.rpc, BigInt(d.chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
  });
  try {
    if (chainId !== d.chainId)
      throw new ChainError("CHAIN_STATE", `RPC is chain ${chainId}, deployment is for ${d.chainId}`);
    await verifyDeployedCode(
      provider,
      d.contracts.VigilRegistry.address,
      VigilRegistryArtifact,
      "VigilRegistry",
    );
    await verifyDeployedCode(provider, releasesOf(d), VigilReleasesArtifact, "VigilReleases");
    process.stdout.write("deployed code matches the artifacts\n");
    return 0;
  } catch (e) {
    throw e instanceof VigilError ? e : translateEthersError(e, values.rpc, []);
  } finally {
    provider.destroy();
  }
}

/**
 * Runs `f` with a registry client that sends from the sending key (see sendingKey). `command`
 * is the command line's command and subcommand, e.g. `vigil release approve`: it prefixes what
 * is said on stderr.
 */
export function withClient(
  values: {
    deployment?: string | undefined;
    rpc?: string | undefined;
    key?: string | undefined;
    "key-file"?: string | undefined;
  },
  command: string,
  f: (c: EthersRegistryClient) => Promise<void>,
): Promise<number> {
  return connected(values, (chainId, rpcUrl) => sendingKey(values, chainId, rpcUrl, command), f);
}

/**
 * Runs `f` with a registry client for reading only (eth_call): no sending key is asked for, so a
 * listing works on any chain without --key-file or VIGIL_CHAIN_KEY. The client's key is a fresh
 * random one that never signs anything.
 */
export function withReader(
  values: { deployment?: string | undefined; rpc?: string | undefined },
  f: (c: EthersRegistryClient) => Promise<void>,
): Promise<number> {
  return connected(values, () => Wallet.createRandom().privateKey, f);
}

/**
 * The steps withClient and withReader share: the deployment file, --rpc, a client on the
 * deployment's contracts with the key `keyFor` picks for the deployment's chain, and closing it
 * whatever `f` does.
 */
async function connected(
  values: { deployment?: string | undefined; rpc?: string | undefined },
  keyFor: (chainId: bigint, rpcUrl: string) => string,
  f: (c: EthersRegistryClient) => Promise<void>,
): Promise<number> {
  const d = readDeployment(values.deployment);
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  rpcFlag("rpc", values.rpc);
  const c = await EthersRegistryClient.connect({
    rpcUrl: values.rpc,
    privateKey: keyFor(BigInt(d.chainId), values.rpc),
    registry: d.contracts.VigilRegistry.address,
    releases: releasesOf(d),
    pollingIntervalMs: 100,
  });
  try {
    await f(c);
    return 0;
  } finally {
    await c.close();
  }
}

export const common = {
  deployment: { type: "string" },
  rpc: { type: "string" },
  key: { type: "string" },
  "key-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

async function registerGateway(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...common,
    "gateway-id": { type: "string" },
    site: { type: "string" },
    "key-type": { type: "string", default: "secp256k1" },
    "device-key-file": { type: "string" },
    "public-key": { type: "string" },
    metadata: { type: "string", default: "" },
  });
  if (values.help) {
    process.stdout.write(REGISTER_HELP);
    return 0;
  }
  const type = values["key-type"] as KeyType;
  if (type !== "secp256k1" && type !== "p256") throw new UsageError("--key-type must be secp256k1 or p256");
  const gatewayId = values["gateway-id"];
  if (!gatewayId || !/^0x[0-9a-fA-F]{64}$/.test(gatewayId))
    throw new UsageError("--gateway-id must be 32 bytes of hex");
  if (!values.site) throw new UsageError("--site is required");
  let publicKey = values["public-key"] as Hex | undefined;
  if (values["device-key-file"]) {
    const file = values["device-key-file"];
    publicKey = registrationPublicKey(importKey(type, readKeyFile(file, `--device-key-file ${file}`) as Hex));
  }
  if (!publicKey) throw new UsageError("give --device-key-file or --public-key");
  // The registry encoding (chain/keys.ts): checked here, not in ethers' words after the chain.
  const bytes = type === "secp256k1" ? 20 : 64;
  if (!new RegExp(`^0x[0-9a-fA-F]{${2 * bytes}}$`).test(publicKey))
    throw new UsageError(
      `--public-key for ${type} must be 0x and ${bytes} bytes of hex (${type === "secp256k1" ? "the key's address" : "x‖y"}), got "${publicKey}"`,
    );
  const site = siteIdOf(values.site);
  return withClient(values, "vigil chain register-gateway", async (c) => {
    const r = await c.registerGateway({
      gatewayId: gatewayId as Hex,
      site,
      keyType: type,
      publicKey: publicKey,
      metadataURI: values.metadata ?? "",
    });
    process.stdout.write(`registered gateway ${gatewayId} at site ${site} (tx ${r.txHash})\n`);
  });
}

async function grantOperator(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, site: { type: "string" }, account: { type: "string" } });
  if (values.help) {
    process.stdout.write(GRANT_HELP);
    return 0;
  }
  if (!values.site || !values.account) throw new UsageError("--site and --account are required");
  const site = siteIdOf(values.site);
  const account = addressFlag("account", values.account);
  return withClient(values, "vigil chain grant-operator", async (c) => {
    const r = await c.grantOperator(site, account);
    process.stdout.write(`granted operator of site ${site} to ${account} (tx ${r.txHash})\n`);
  });
}

/** Entry point of `vigil chain`; returns the process exit code. */
export async function chainCommand(argv: string[]): Promise<number> {
  return runSubcommand(
    "chain",
    HELP,
    {
      deploy,
      verify,
      "register-gateway": registerGateway,
      "grant-operator": grantOperator,
    },
    argv,
  );
}
