/**
 * Compiles contracts/src/*.sol with the pinned solc-js (no compiler download) and returns ABI and
 * bytecode per contract. Used by `npm run build:contracts` (contracts/scripts/build.ts) and by the
 * artifact freshness test.
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
export const CONTRACTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_ROOT = resolve(CONTRACTS_DIR, "..");

/** Compiler settings shared by the build and the forge shim's profile (see foundry.toml). */
export const SOLC_SETTINGS = {
  // cancun: accepted by every major L2 today (OP Stack, Arbitrum, Base, zkSync EVM-equivalence).
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 10_000 },
  metadata: { bytecodeHash: "ipfs" },
} as const;

export interface CompiledContract {
  contractName: string;
  sourceName: string;
  abi: unknown[];
  bytecode: string;
  deployedBytecode: string;
  /** Offsets of immutables in the runtime code: {astId: [{start, length}]}. */
  immutableReferences: Record<string, { start: number; length: number }[]>;
}

export interface CompileResult {
  solcVersion: string;
  sourcesHash: string;
  contracts: CompiledContract[];
}

/** Reads every top-level source under contracts/src, keyed by its path relative to the repo root. */
export function readSources(): Record<string, { content: string }> {
  const dir = join(CONTRACTS_DIR, "src");
  const out: Record<string, { content: string }> = {};
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith(".sol"))
    .sort()) {
    out[`contracts/src/${f}`] = { content: readFileSync(join(dir, f), "utf8") };
  }
  return out;
}

/** sha256 over the sources (names and contents), the compiler version and settings. */
export function hashSources(sources: Record<string, { content: string }>, solcVersion: string): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ solcVersion, settings: SOLC_SETTINGS }));
  for (const name of Object.keys(sources).sort()) {
    h.update(`\0${name}\0${sources[name]?.content ?? ""}`);
  }
  return `0x${h.digest("hex")}`;
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<
      string,
      {
        abi: unknown[];
        evm: {
          bytecode: { object: string };
          deployedBytecode: {
            object: string;
            immutableReferences?: Record<string, { start: number; length: number }[]>;
          };
        };
      }
    >
  >;
}

interface Solc {
  version(): string;
  compile(input: string, opts: { import: (p: string) => { contents: string } | { error: string } }): string;
}

export function solcVersion(): string {
  return (require("solc") as Solc).version();
}

/** Compiles the sources; throws with the compiler's messages on any error. */
export function compileContracts(): CompileResult {
  const solc = require("solc") as Solc;
  const sources = readSources();
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SOLC_SETTINGS,
      outputSelection: {
        "*": {
          "*": [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "evm.deployedBytecode.immutableReferences",
          ],
        },
      },
    },
  };
  const findImport = (p: string): { contents: string } | { error: string } => {
    try {
      const file = p.startsWith("@") ? require.resolve(p) : join(REPO_ROOT, p);
      return { contents: readFileSync(file, "utf8") };
    } catch {
      return { error: `not found: ${p}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport })) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join("\n")}`);
  const contracts: CompiledContract[] = [];
  for (const sourceName of Object.keys(sources)) {
    for (const [contractName, c] of Object.entries(output.contracts?.[sourceName] ?? {})) {
      // Interfaces have no bytecode; libraries of internal functions (VigilAlertLeaf) have no ABI:
      // both are compiled into the contracts that use them and get no artifact of their own.
      if (c.evm.bytecode.object.length === 0 || c.abi.length === 0) continue;
      contracts.push({
        contractName,
        sourceName,
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        immutableReferences: c.evm.deployedBytecode.immutableReferences ?? {},
      });
    }
  }
  return { solcVersion: solc.version(), sourcesHash: hashSources(sources, solc.version()), contracts };
}

/** Renders a contract as a TypeScript module whose ABI is `as const` (typed for ethers / viem). */
export function renderArtifact(c: CompiledContract, solcVersion: string, sourcesHash: string): string {
  return [
    "// Generated by contracts/scripts/build.ts (npm run build:contracts). Do not edit.",
    `export const ${c.contractName}Artifact = {`,
    `  contractName: ${JSON.stringify(c.contractName)},`,
    `  sourceName: ${JSON.stringify(c.sourceName)},`,
    `  solcVersion: ${JSON.stringify(solcVersion)},`,
    `  sourcesHash: ${JSON.stringify(sourcesHash)},`,
    `  abi: ${JSON.stringify(c.abi, null, 2).replace(/\n/g, "\n  ")},`,
    `  bytecode: ${JSON.stringify(c.bytecode)},`,
    `  deployedBytecode: ${JSON.stringify(c.deployedBytecode)},`,
    `  immutableReferences: ${JSON.stringify(c.immutableReferences)},`,
    "} as const;",
    "",
  ].join("\n");
}
