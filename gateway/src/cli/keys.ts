/** `vigil keys`: create and inspect the gateway's encrypted keystore. */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { GatewaySigner } from "../attest/signer.ts";
import { translateEthersError } from "../chain/errors.ts";
import { EthersRegistryClient } from "../chain/ethers-client.ts";
import { loadSenderKey } from "../chain/sender-key.ts";
import { renameDurable } from "../core/atomic-file.ts";
import { resolvePath } from "../core/paths.ts";
import { generateKey, registrationPublicKey, type KeyType } from "../chain/keys.ts";
import { loadKeystore, passphraseFromEnv, writeKeystore } from "../attest/keystore.ts";
import { loadConfigFile, resolveConfig, type GatewayConfig } from "../config/config.ts";
import { UsageError, VigilError } from "../core/errors.ts";
import { gatewayIdOf } from "../config/gateway-id.ts";
import { readDeployment } from "../runtime.ts";
import { releasesOf } from "../chain/deploy.ts";
import { didYouMean, oneOf, parse, refuseFlags, rpcFlag } from "./args.ts";
import { KEYS_HELP } from "./help/keys.ts";
import { makeDir } from "../core/make-dir.ts";

export { KEYS_HELP } from "./help/keys.ts";

const KEYS_SUBCOMMANDS = ["init", "show", "rotate"];

export async function keysCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      config: { type: "string", short: "c" },
      type: { type: "string" },
      force: { type: "boolean" },
      rpc: { type: "string" },
      deployment: { type: "string" },
      "sender-key-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  const sub = positionals[0];
  if (v.help || !sub) {
    process.stdout.write(KEYS_HELP);
    return v.help ? 0 : 2;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  // Before asking for a passphrase: an unknown subcommand is a usage error.
  if (!KEYS_SUBCOMMANDS.includes(sub))
    throw new UsageError(`unknown keys command "${sub}"${didYouMean(sub, KEYS_SUBCOMMANDS)}`);
  if (sub !== "init") refuseFlags(v, ["force"], 'applies only to "vigil keys init"');
  if (sub === "show") refuseFlags(v, ["type"], 'applies only to "vigil keys init" and "rotate"');
  if (sub !== "rotate")
    refuseFlags(v, ["rpc", "deployment", "sender-key-file"], 'applies only to "vigil keys rotate"');
  // Before the config, the passphrase and the chain: rotate read it only after the registry.
  const type =
    v.type === undefined ? undefined : oneOf("type", v.type, ["secp256k1", "p256"] as const, "secp256k1");
  const cfg = v.config ? loadConfigFile(v.config) : resolveConfig({});
  const path = resolvePath(cfg.dataDir, cfg.attest.keystore);
  const passphrase = await passphraseFromEnv();
  if (sub === "init") {
    if (existsSync(path) && !v.force)
      throw new VigilError("KEYSTORE_EXISTS", `${path} exists; use --force to replace it`);
    await makeDir(cfg.dataDir, 0o700);
    // attest.keystore may name a subfolder of the data folder (or another folder): create it too.
    await makeDir(dirname(path), 0o700);
    await writeKeystore(path, generateKey(type ?? "secp256k1"), passphrase);
  }
  if (sub === "rotate") return rotate(cfg, path, passphrase, v);
  const signer = await loadKeystore(path, passphrase);
  const info = {
    keystore: path,
    gatewayId: gatewayIdOf(cfg),
    ...signer.info(),
    // What `vigil chain register-gateway --public-key` takes for this key type.
    registrationPublicKey: registrationPublicKey(signer.exportKey()),
  };
  process.stdout.write(JSON.stringify(info, null, 2) + "\n");
  return 0;
}

async function rotate(
  cfg: GatewayConfig,
  path: string,
  passphrase: string,
  v: {
    type?: string | undefined;
    rpc?: string | undefined;
    deployment?: string | undefined;
    "sender-key-file"?: string | undefined;
  },
): Promise<number> {
  const at = (p: string) => resolvePath(cfg.dataDir, p);
  const rpcUrl = v.rpc !== undefined ? rpcFlag("rpc", v.rpc) : cfg.chain.rpcUrl;
  if (!rpcUrl) throw new UsageError("--rpc URL is required (or chain.rpcUrl in the config)");
  const depPath = v.deployment ?? (cfg.chain.deployment ? at(cfg.chain.deployment) : undefined);
  if (!depPath) throw new UsageError("--deployment FILE is required (or chain.deployment in the config)");
  const deployment = readDeployment(depPath);
  const senderFile =
    v["sender-key-file"] ?? (cfg.chain.senderKeyFile ? at(cfg.chain.senderKeyFile) : undefined);
  // Mode 0600, first line, checked without ever echoing the key (a malformed key given to ethers
  // would be printed in its error).
  const sender = loadSenderKey(
    senderFile ?? null,
    "VIGIL_CHAIN_SENDER_KEY",
    process.env,
    v["sender-key-file"]
      ? "--sender-key-file"
      : senderFile
        ? "chain.senderKeyFile"
        : "VIGIL_CHAIN_SENDER_KEY",
  );
  if (!sender)
    throw new UsageError("rotation is a transaction: give --sender-key-file or set VIGIL_CHAIN_SENDER_KEY");
  const current = await loadKeystore(path, passphrase);
  const gatewayId = gatewayIdOf(cfg);
  const nextPath = `${path}.next`;
  const client = await EthersRegistryClient.connect({
    rpcUrl,
    privateKey: sender,
    registry: deployment.contracts.VigilRegistry.address,
    releases: releasesOf(deployment),
  });
  try {
    if (client.domain().chainId !== BigInt(deployment.chainId))
      throw new VigilError(
        "CHAIN_STATE",
        `the RPC endpoint is not chain ${deployment.chainId} of the deployment file`,
      );
    const before = await client.getGateway(gatewayId);
    const registered = (before.keyType === "p256" ? before.p256PublicKey : before.signer)?.toLowerCase();
    // Resume: a new key from an interrupted rotation is reused, never replaced by another one.
    const pending = existsSync(nextPath) ? await loadKeystore(nextPath, passphrase) : undefined;
    let next: GatewaySigner;
    let tx: string | null = null;
    if (pending && registered === pending.publicKey.toLowerCase()) next = pending;
    else {
      // Refusals come before any file is written: a refused rotation leaves nothing behind.
      if (before.status !== "active")
        throw new VigilError(
          "CHAIN_STATE",
          before.status === "none"
            ? `gateway ${gatewayId} is not registered in the registry; register it first (vigil chain register-gateway), then rotate`
            : `gateway ${gatewayId} is ${before.status} in the registry; only an active gateway rotates its key`,
        );
      if (registered !== current.publicKey.toLowerCase())
        throw new VigilError(
          "CHAIN_STATE",
          `the local key ${current.publicKey} is not the registered key ${registered}, so it cannot sign the rotation; restore the registered keystore, or have the site operator call VigilRegistry.rotateGatewayKey`,
        );
      next = pending ?? new GatewaySigner(generateKey((v.type as KeyType | undefined) ?? current.keyType));
      // Written before the transaction, so a crash after it is sent resumes with the same key.
      if (!pending) await writeKeystore(nextPath, next.exportKey(), passphrase);
      const digest = await client.keyRotationDigest(gatewayId, next.keyType, next.publicKey);
      tx = (
        await client.rotateGatewayKeyBySignature(
          gatewayId,
          next.keyType,
          next.publicKey,
          current.sign(digest),
        )
      ).txHash;
    }
    // On chain now: swap the files (rename is atomic, and synced: a power cut must not bring back
    // the old key; the old private key is deleted, its public key stays in the registry's history
    // so old receipts still verify).
    await renameDurable(nextPath, path);
    const after = await client.getGateway(gatewayId);
    process.stdout.write(
      JSON.stringify(
        {
          keystore: path,
          gatewayId,
          previousPublicKey: current.publicKey,
          ...next.info(),
          keyEpoch: after.keyEpoch,
          tx,
        },
        null,
        2,
      ) + "\n",
    );
    return 0;
  } catch (e) {
    throw e instanceof VigilError ? e : translateEthersError(e, rpcUrl, []);
  } finally {
    await client.close();
  }
}
