/**
 * Deploys VigilRegistry + VigilReleases from the committed artifacts and verifies that the code on chain
 * is the artifact's runtime code (immutables masked: they are filled in by the constructor).
 */
import { AbiCoder, ContractFactory, getAddress, keccak256, type Provider, type Signer } from "ethers";
import {
  VigilRegistryArtifact,
  VigilReleasesArtifact,
  SOURCES_HASH,
} from "../../../contracts/artifacts/index.ts";
import { readFileSync } from "node:fs";
import { VigilError } from "../core/errors.ts";
import { ChainStateError } from "./errors.ts";
import { isAddress, type Hex } from "../core/hex.ts";

export interface DeployedContract {
  address: Hex;
  txHash: Hex;
  blockNumber: number;
  /** keccak256 of the artifact's runtime bytecode (before immutables are filled in). */
  runtimeCodeHash: Hex;
  /** keccak256 of the artifact's creation bytecode. */
  creationCodeHash: Hex;
}

export interface Deployment {
  format: "vigil-deployment/1";
  chainId: string;
  deployer: Hex;
  admin: Hex;
  adminDelaySeconds: number;
  approvalThreshold: number;
  maxReleaseSize: string;
  solcVersion: string;
  sourcesHash: string;
  deployBlock: number;
  deployedAt: string;
  contracts: { VigilRegistry: DeployedContract; VigilReleases: DeployedContract };
}

/**
 * A deployment as read from a file: VigilReleases may be absent from a hand-written one (the
 * verifier and anchoring need only VigilRegistry); read it with {@link releasesOf}.
 */
export type LoadedDeployment = Omit<Deployment, "contracts"> & {
  contracts: { VigilRegistry: DeployedContract; VigilReleases?: DeployedContract };
};

/**
 * The VigilReleases address of a deployment, for what reads it (the registry watch, `vigil access`,
 * updates, key rotation). A file without it (hand-written: the verifier and anchoring need only
 * VigilRegistry) is a `BAD_DEPLOYMENT` naming the field, not a TypeError.
 */
export function releasesOf(d: LoadedDeployment): Hex {
  const rel = d.contracts.VigilReleases;
  if (rel === undefined)
    throw new VigilError(
      "BAD_DEPLOYMENT",
      'the deployment file has no contracts.VigilReleases.address, which the registry watch, access commands, updates and key rotation read: use the file "vigil chain deploy" wrote',
    );
  return rel.address;
}

export interface DeployOptions {
  /** Default admin (default: the deployer). */
  admin?: string;
  /** Two-step admin handover delay in seconds (default 2 days). */
  adminDelaySeconds?: number;
  /** Release approval threshold M (default 2). */
  approvalThreshold?: number;
  /** Maximum release size in bytes (default 512 MiB). */
  maxReleaseSize?: bigint;
}

interface Artifact {
  abi: readonly unknown[];
  bytecode: string;
  deployedBytecode: string;
  immutableReferences: Readonly<Record<string, readonly { start: number; length: number }[]>>;
}

/** Zeroes the immutable slots of runtime code so artifact and on-chain code can be compared. */
export function maskImmutables(code: string, refs: Artifact["immutableReferences"]): string {
  const bytes = Buffer.from(code.replace(/^0x/, ""), "hex");
  for (const list of Object.values(refs)) {
    for (const { start, length } of list) {
      if (start + length <= bytes.length) bytes.fill(0, start, start + length); // shorter code cannot match anyway
    }
  }
  return `0x${bytes.toString("hex")}`;
}

/**
 * Checks that `address` holds `artifact`'s runtime code.
 * @throws ChainStateError if there is no code or it differs.
 */
export async function verifyDeployedCode(
  provider: Provider,
  address: string,
  artifact: Artifact,
  name: string,
): Promise<void> {
  const onChain = await provider.getCode(address);
  if (onChain === "0x") throw new ChainStateError(`${name}: no code at ${address}`);
  const a = maskImmutables(onChain, artifact.immutableReferences);
  const b = maskImmutables(artifact.deployedBytecode, artifact.immutableReferences);
  if (a !== b) {
    throw new ChainStateError(`${name}: code at ${address} does not match the artifact`, {
      details: `on-chain ${keccak256(a)} vs artifact ${keccak256(b)} (immutables masked)`,
    });
  }
}

async function deployOne(signer: Signer, artifact: Artifact, args: unknown[]): Promise<DeployedContract> {
  const factory = new ContractFactory(artifact.abi as never, artifact.bytecode, signer);
  const contract = await factory.deploy(...args);
  const tx = contract.deploymentTransaction();
  const receipt = await tx?.wait();
  if (!receipt || receipt.status !== 1) throw new ChainStateError("deployment transaction failed");
  return {
    address: getAddress(await contract.getAddress()) as Hex,
    txHash: receipt.hash as Hex,
    blockNumber: receipt.blockNumber,
    runtimeCodeHash: keccak256(artifact.deployedBytecode) as Hex,
    creationCodeHash: keccak256(artifact.bytecode) as Hex,
  };
}

/** Deploys both contracts, verifies their code, and returns the deployment record. */
export async function deployVigil(signer: Signer, opts: DeployOptions = {}): Promise<Deployment> {
  const provider = signer.provider;
  if (!provider) throw new ChainStateError("signer has no provider");
  const deployer = getAddress(await signer.getAddress()) as Hex;
  const admin = getAddress(opts.admin ?? deployer) as Hex;
  const adminDelaySeconds = opts.adminDelaySeconds ?? 2 * 24 * 3600;
  const approvalThreshold = opts.approvalThreshold ?? 2;
  const maxReleaseSize = opts.maxReleaseSize ?? 512n * 1024n * 1024n;
  const registry = await deployOne(signer, VigilRegistryArtifact, [adminDelaySeconds, admin]);
  const releases = await deployOne(signer, VigilReleasesArtifact, [
    registry.address,
    approvalThreshold,
    maxReleaseSize,
  ]);
  await verifyDeployedCode(provider, registry.address, VigilRegistryArtifact, "VigilRegistry");
  await verifyDeployedCode(provider, releases.address, VigilReleasesArtifact, "VigilReleases");
  // The releases contract must point at this registry (its only non-hashed immutable we can read back).
  const coder = AbiCoder.defaultAbiCoder();
  const got = await provider.call({ to: releases.address, data: "0x7b103999" /* registry() */ });
  if (coder.decode(["address"], got)[0] !== registry.address) {
    throw new ChainStateError("VigilReleases.registry() does not point at the deployed registry");
  }
  const network = await provider.getNetwork();
  return {
    format: "vigil-deployment/1",
    chainId: network.chainId.toString(),
    deployer,
    admin,
    adminDelaySeconds,
    approvalThreshold,
    maxReleaseSize: maxReleaseSize.toString(),
    solcVersion: VigilRegistryArtifact.solcVersion,
    sourcesHash: SOURCES_HASH,
    deployBlock: registry.blockNumber,
    deployedAt: new Date().toISOString(),
    contracts: { VigilRegistry: registry, VigilReleases: releases },
  };
}

/**
 * Reads a deployment file written by `vigil chain deploy`; throws a `VigilError` with code
 * `BAD_DEPLOYMENT` when it cannot be read, is not a vigil-deployment/1 file, or its chain id,
 * deployment block or contract addresses are missing or malformed.
 */
export function readDeploymentFile(path: string): LoadedDeployment {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new VigilError("BAD_DEPLOYMENT", `cannot read deployment file ${path}`, { cause });
  }
  let d: LoadedDeployment;
  try {
    d = JSON.parse(text) as LoadedDeployment;
  } catch (cause) {
    // Readable, but not what "vigil chain deploy" writes (a config file given by mistake, say).
    throw new VigilError("BAD_DEPLOYMENT", `${path} is not a vigil-deployment/1 file (not JSON)`, { cause });
  }
  if (d === null || typeof d !== "object" || d.format !== "vigil-deployment/1" || !d.contracts?.VigilRegistry)
    throw new VigilError("BAD_DEPLOYMENT", `${path} is not a vigil-deployment/1 file`);
  // The fields a trust anchor is made of: refused here, by name, rather than failing later.
  const bad = (field: string, want: string): never => {
    throw new VigilError("BAD_DEPLOYMENT", `${path}: ${field} must be ${want}`);
  };
  const chainId = d.chainId as unknown;
  const decimal =
    (typeof chainId === "string" && /^\d{1,78}$/.test(chainId)) ||
    (typeof chainId === "number" && Number.isSafeInteger(chainId) && chainId > 0);
  if (!decimal || BigInt(chainId as string) === 0n) bad("chainId", "a decimal chain id");
  d.chainId = String(chainId); // one type for every reader (a hand-written file may give a number)
  // Absent in hand-written files: log queries then start at block 0.
  const from = d.deployBlock as unknown;
  if (from === undefined) d.deployBlock = 0;
  else if (!(Number.isSafeInteger(from) && (from as number) >= 0)) bad("deployBlock", "a block number");
  if (!isAddress(d.contracts.VigilRegistry.address))
    bad("contracts.VigilRegistry.address", "a 20-byte 0x address");
  const rel = d.contracts.VigilReleases as DeployedContract | undefined;
  if (rel !== undefined && !isAddress(rel?.address))
    bad("contracts.VigilReleases.address", "a 20-byte 0x address");
  return d;
}
