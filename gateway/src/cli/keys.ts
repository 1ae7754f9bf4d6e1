/** `vigil keys`: create and inspect the gateway's encrypted keystore. */
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { generateKey, registrationPublicKey, type KeyType } from "../chain/keys.ts";
import { loadKeystore, passphraseFromEnv, writeKeystore } from "../attest/keystore.ts";
import { loadConfigFile, resolveConfig } from "../config/config.ts";
import { UsageError, VigilError } from "../core/errors.ts";
import { gatewayIdOf } from "../config/gateway-id.ts";
import { parse } from "./args.ts";

export const KEYS_HELP = `usage: vigil keys <init|show> [options]

  init      create the gateway signing key in an encrypted keystore (mode 0600)
  show      print the key's public information (never the private key)

options:
  -c, --config FILE     gateway config (dataDir, attest.keystore, attest.gatewayName)
  --type TYPE           secp256k1 (default) or p256 (init)
  --force               overwrite an existing keystore (init)
  -h, --help            this text

The passphrase comes from VIGIL_KEYSTORE_PASSPHRASE or the file named by
VIGIL_KEYSTORE_PASSPHRASE_FILE (mode 0600). Register the printed public key with
"vigil chain register-gateway".
`;

export async function keysCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      config: { type: "string", short: "c" },
      type: { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  const sub = positionals[0];
  if (v.help || !sub) {
    process.stdout.write(KEYS_HELP);
    return v.help ? 0 : 2;
  }
  const cfg = v.config ? loadConfigFile(v.config) : resolveConfig({});
  const path = isAbsolute(cfg.attest.keystore) ? cfg.attest.keystore : join(cfg.dataDir, cfg.attest.keystore);
  const passphrase = await passphraseFromEnv();
  if (sub === "init") {
    const type = (v.type ?? "secp256k1") as KeyType;
    if (type !== "secp256k1" && type !== "p256")
      throw new UsageError(`--type must be secp256k1 or p256, got "${v.type}"`);
    if (existsSync(path) && !v.force)
      throw new VigilError("KEYSTORE_EXISTS", `${path} exists; use --force to replace it`);
    const { mkdir } = await import("node:fs/promises");
    await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    await writeKeystore(path, generateKey(type), passphrase);
  } else if (sub !== "show") {
    throw new UsageError(`unknown keys command "${sub}"`);
  }
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
