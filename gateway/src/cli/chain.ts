/**
 * `vigil chain …`: deploy the registry contracts and manage gateways from the command line.
 *
 *   vigil chain deploy --rpc URL [--key HEX | --key-file PATH] [--out deployment.json] [--admin ADDR]
 *                      [--admin-delay SECONDS] [--threshold M] [--max-release-size BYTES]
 *   vigil chain verify --deployment FILE [--rpc URL]
 *   vigil chain register-gateway --deployment FILE --rpc URL --gateway-id HEX32 --site HEX32|NAME
 *                      (--device-key-file PATH --key-type secp256k1|p256 | --public-key HEX) [--metadata URI]
 *   vigil chain grant-operator --deployment FILE --rpc URL --site HEX32|NAME --account ADDR
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { JsonRpcProvider, NonceManager, Wallet, id as keccakId } from "ethers";
import { VigilRegistryArtifact, VigilReleasesArtifact } from "../../../contracts/artifacts/index.ts";
import { importKey, registrationPublicKey, type KeyType } from "../chain/keys.ts";
import { ANVIL_DEV_KEYS } from "../chain/anvil.ts";
import { deployVigil, readDeploymentFile, verifyDeployedCode, type Deployment } from "../chain/deploy.ts";
import type { Hex } from "../core/hex.ts";
import { ChainError, translateEthersError } from "../chain/errors.ts";
import { EthersRegistryClient } from "../chain/ethers-client.ts";
import { UsageError, VigilError, redactUrl } from "../core/errors.ts";

const HELP = `usage: vigil chain <command> [options]

commands:
  deploy             deploy VigilRegistry + VigilReleases and write a deployment file
  verify             check that deployed code matches the committed artifacts
  register-gateway   register a gateway's signing key at a site (caller: site operator)
  grant-operator     grant a site's operator role (caller: default admin)

deploy options:
  --rpc URL                 JSON-RPC endpoint (anvil: http://127.0.0.1:8545)
  --key HEX                 deployer private key (default: anvil dev account #0 — local chains only)
  --key-file PATH           file holding the deployer private key (hex)
  --out PATH                deployment file to write (default: deployment.json)
  --admin ADDR              default admin (default: the deployer)
  --admin-delay SECONDS     two-step admin handover delay (default: 172800)
  --threshold M             release approvals needed (default: 2)
  --max-release-size BYTES  release size cap (default: 536870912)

common options:
  --deployment PATH         deployment file written by deploy
  --help                    show this help
`;

export function readKey(values: { key?: string | undefined; "key-file"?: string | undefined }): string {
  if (values.key && values["key-file"]) throw new UsageError("give --key or --key-file, not both");
  if (values["key-file"]) return readFileSync(values["key-file"], "utf8").trim();
  return values.key ?? ANVIL_DEV_KEYS[0];
}

function siteId(s: string): Hex {
  return (/^0x[0-9a-fA-F]{64}$/.test(s) ? s.toLowerCase() : keccakId(`site:${s}`)) as Hex;
}

function readDeployment(path: string | undefined): Deployment {
  if (!path) throw new UsageError("--deployment PATH is required");
  return readDeploymentFile(path);
}

function int(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

async function deploy(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rpc: { type: "string" },
      key: { type: "string" },
      "key-file": { type: "string" },
      out: { type: "string", default: "deployment.json" },
      admin: { type: "string" },
      "admin-delay": { type: "string" },
      threshold: { type: "string" },
      "max-release-size": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  const provider = new JsonRpcProvider(values.rpc, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 100;
  try {
    try {
      await provider.send("eth_chainId", []); // fail fast (and once) on an unreachable endpoint
    } catch (e) {
      throw translateEthersError(e, values.rpc, []);
    }
    const signer = new NonceManager(new Wallet(readKey(values), provider));
    const opts = {
      adminDelaySeconds: int("admin-delay", values["admin-delay"], 172_800),
      approvalThreshold: int("threshold", values.threshold, 2),
      maxReleaseSize: BigInt(int("max-release-size", values["max-release-size"], 512 * 1024 * 1024)),
      ...(values.admin ? { admin: values.admin } : {}),
    };
    let d: Deployment;
    try {
      d = await deployVigil(signer, opts);
    } catch (e) {
      throw translateEthersError(e, values.rpc, []);
    }
    writeFileSync(values.out ?? "deployment.json", `${JSON.stringify(d, null, 2)}\n`);
    process.stdout.write(
      `deployed on chain ${d.chainId} (${redactUrl(values.rpc)}) at block ${d.deployBlock}\n` +
        `  VigilRegistry ${d.contracts.VigilRegistry.address}\n` +
        `  VigilReleases ${d.contracts.VigilReleases.address}\n` +
        `  runtime code verified against the artifacts; wrote ${values.out}\n`,
    );
    return 0;
  } finally {
    provider.destroy();
  }
}

async function verify(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { deployment: { type: "string" }, rpc: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const d = readDeployment(values.deployment);
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  const provider = new JsonRpcProvider(values.rpc, undefined, { staticNetwork: true, cacheTimeout: -1 });
  try {
    const chainId = (await provider.getNetwork()).chainId.toString();
    if (chainId !== d.chainId)
      throw new ChainError("CHAIN_STATE", `RPC is chain ${chainId}, deployment is for ${d.chainId}`);
    await verifyDeployedCode(
      provider,
      d.contracts.VigilRegistry.address,
      VigilRegistryArtifact,
      "VigilRegistry",
    );
    await verifyDeployedCode(
      provider,
      d.contracts.VigilReleases.address,
      VigilReleasesArtifact,
      "VigilReleases",
    );
    process.stdout.write("deployed code matches the artifacts\n");
    return 0;
  } catch (e) {
    throw e instanceof VigilError ? e : translateEthersError(e, values.rpc, []);
  } finally {
    provider.destroy();
  }
}

/** Connects a registry client from --deployment/--rpc/--key, runs `f`, closes it. */
export async function withClient(
  values: {
    deployment?: string | undefined;
    rpc?: string | undefined;
    key?: string | undefined;
    "key-file"?: string | undefined;
  },
  f: (c: EthersRegistryClient) => Promise<void>,
): Promise<number> {
  const d = readDeployment(values.deployment);
  if (!values.rpc) throw new UsageError("--rpc URL is required");
  const c = await EthersRegistryClient.connect({
    rpcUrl: values.rpc,
    privateKey: readKey(values),
    registry: d.contracts.VigilRegistry.address,
    releases: d.contracts.VigilReleases.address,
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
  help: { type: "boolean" },
} as const;

async function registerGateway(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      "gateway-id": { type: "string" },
      site: { type: "string" },
      "key-type": { type: "string", default: "secp256k1" },
      "device-key-file": { type: "string" },
      "public-key": { type: "string" },
      metadata: { type: "string", default: "" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
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
    publicKey = registrationPublicKey(
      importKey(type, readFileSync(values["device-key-file"], "utf8").trim() as Hex),
    );
  }
  if (!publicKey) throw new UsageError("give --device-key-file or --public-key");
  const site = siteId(values.site);
  return withClient(values, async (c) => {
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
  const { values } = parseArgs({
    args: argv,
    options: { ...common, site: { type: "string" }, account: { type: "string" } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!values.site || !values.account) throw new UsageError("--site and --account are required");
  const site = siteId(values.site);
  const account = values.account as Hex;
  return withClient(values, async (c) => {
    const r = await c.grantOperator(site, account);
    process.stdout.write(`granted operator of site ${site} to ${account} (tx ${r.txHash})\n`);
  });
}

/** Entry point of `vigil chain`; returns the process exit code. */
export async function chainCommand(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "deploy":
        return await deploy(rest);
      case "verify":
        return await verify(rest);
      case "register-gateway":
        return await registerGateway(rest);
      case "grant-operator":
        return await grantOperator(rest);
      case undefined:
      case "--help":
      case "-h":
      case "help":
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown chain command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof VigilError) {
      process.stderr.write(`vigil chain: ${e.shortMessage}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    if (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`vigil chain: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
