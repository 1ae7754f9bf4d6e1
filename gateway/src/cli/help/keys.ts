/** `vigil keys --help`, in a module of its own so main.ts can print it without loading the command. */
export const KEYS_HELP = `usage: vigil keys <init|show|rotate> [options]

  init      create the gateway signing key in an encrypted keystore (mode 0600)
  show      print the key's public information (never the private key)
  rotate    replace the key on chain: a new key is created, the registered (current) key signs
            the registry's rotation digest, VigilRegistry.rotateGatewayKeyBySignature is sent,
            and only then the keystore is replaced (the new key waits in KEYSTORE.next, so an
            interrupted rotation resumes where it stopped)

options:
  -c, --config FILE     gateway config (dataDir, attest.keystore, attest.gatewayName)
  --type TYPE           secp256k1 or p256: init (default secp256k1); rotate (default: the
                        current key's type)
  --force               overwrite an existing keystore (init)
  --rpc URL             rotate: chain endpoint (default chain.rpcUrl)
  --deployment FILE     rotate: deployment file (default chain.deployment)
  --sender-key-file FILE
                        rotate: key (hex, mode 0600) of any funded account paying gas (default
                        chain.senderKeyFile, else VIGIL_CHAIN_SENDER_KEY); the authority is the
                        current key's signature
  -h, --help            this text

The passphrase comes from VIGIL_KEYSTORE_PASSPHRASE or the file named by
VIGIL_KEYSTORE_PASSPHRASE_FILE (mode 0600; "-" reads standard input). Register the printed public key with
"vigil chain register-gateway".
`;
