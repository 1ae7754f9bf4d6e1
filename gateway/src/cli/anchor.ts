/**
 * `vigil anchor resync`: reconciles the store's anchor records with the registry (anchor/resync.ts)
 * and says what it did. Run it with the gateway stopped (LevelDB allows one process).
 */
import { join } from "node:path";
import { resolvePath } from "../core/paths.ts";
import { connectAnchorChain } from "../anchor/chain.ts";
import { formatResync, resyncAnchors } from "../anchor/resync.ts";
import { loadConfigFile, resolveConfig, rpcUrlsOf, type GatewayConfig } from "../config/config.ts";
import { UsageError, VigilError } from "../core/errors.ts";
import type { Hex } from "../core/hex.ts";
import { gatewayIdOf } from "../config/gateway-id.ts";
import { readDeployment } from "../runtime.ts";
import { LevelFrameStore } from "../store/level.ts";
import { didYouMean, parse, rpcFlag } from "./args.ts";
import type { CliIo } from "./verify.ts";
import { ANCHOR_HELP as HELP } from "./help/anchor.ts";

const stdio: CliIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

export async function anchorCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    io.out(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "resync") {
    io.err(
      `vigil anchor: unknown anchor command "${sub}"${didYouMean(sub, ["resync"])} (see "vigil anchor --help")\n`,
    );
    return 2;
  }
  let store: LevelFrameStore | undefined;
  let close: (() => Promise<void>) | undefined;
  try {
    const { values: v } = parse(rest, {
      config: { type: "string", short: "c" },
      "data-dir": { type: "string" },
      deployment: { type: "string" },
      rpc: { type: "string", multiple: true },
      "gateway-id": { type: "string" },
      "from-seq": { type: "string" },
      "dry-run": { type: "boolean" },
      "chain-reset": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (v.help) {
      io.out(HELP);
      return 0;
    }
    const cfg: GatewayConfig = v.config ? loadConfigFile(v.config) : resolveConfig({});
    const dataDir = v["data-dir"] ?? cfg.dataDir;
    const depPath = v.deployment ?? cfg.chain.deployment;
    if (!depPath) throw new UsageError("--deployment FILE is required (or chain.deployment in the config)");
    const deployment = readDeployment(v.deployment ? depPath : resolvePath(dataDir, depPath));
    const rpcUrls = v.rpc?.map((u) => rpcFlag("rpc", u)) ?? rpcUrlsOf(cfg.chain);
    if (rpcUrls.length === 0) throw new UsageError("--rpc URL is required (or chain.rpcUrl in the config)");
    const gid = v["gateway-id"];
    if (gid !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(gid))
      throw new UsageError(`--gateway-id must be 0x + 64 hex digits, got "${gid}"`);
    const from = v["from-seq"];
    if (from !== undefined && !/^[1-9]\d*$/.test(from))
      throw new UsageError(`--from-seq must be a batch seq (1, 2, …), got "${from}"`);
    const gatewayId = (gid?.toLowerCase() ?? gatewayIdOf(cfg)) as Hex;

    const chain = await connectAnchorChain({
      rpcUrls,
      chainId: BigInt(deployment.chainId),
      registry: deployment.contracts.VigilRegistry.address,
      deployBlock: deployment.deployBlock,
      caps: { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n },
      finality: cfg.chain.finality,
      confirmations: cfg.chain.confirmations,
      logBlockRange: cfg.chain.logBlockRange,
      rpcTimeoutMs: cfg.chain.rpcTimeoutMs,
      healthCheckIntervalMs: 0,
    });
    close = () => chain.close();
    // An existing store only: a mistyped --data-dir must not become an empty store "in agreement".
    store = new LevelFrameStore({
      dir: join(dataDir, "store"),
      reserveBytes: 0,
      minFreeBytes: 0,
      create: false,
    });
    await store.open();
    const report = await resyncAnchors({
      store,
      chain,
      gatewayId,
      confirmations: cfg.chain.finality === "finalized" ? 0 : cfg.chain.confirmations,
      dryRun: v["dry-run"] ?? false,
      chainReset: v["chain-reset"] ?? false,
      ...(from !== undefined ? { fromSeq: Number(from) } : {}),
    });
    io.out(
      v.json
        ? JSON.stringify(
            {
              gatewayId,
              chainId: deployment.chainId,
              registry: deployment.contracts.VigilRegistry.address,
              ...report,
            },
            null,
            2,
          ) + "\n"
        : `gateway ${gatewayId}, registry ${deployment.contracts.VigilRegistry.address} on chain ${deployment.chainId}\n${formatResync(report)}`,
    );
    return report.conflicts.length === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof UsageError) {
      // One line, as every command's usage error (fatal.ts reportCommandError): not the help.
      io.err(`vigil anchor resync: ${e.shortMessage} (see "vigil anchor resync --help")\n`);
      return 2;
    }
    if (e instanceof VigilError) {
      io.err(`vigil anchor resync: ${e.shortMessage}\n`);
      return 1;
    }
    throw e;
  } finally {
    await store?.close();
    await close?.();
  }
}
