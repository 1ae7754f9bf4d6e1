/** `vigil release --help`, in a module of its own so main.ts can print it without loading the command. */
export const RELEASE_HELP = `usage: vigil release <command> [options]

commands:
  publish      hash a model or firmware file, check it, and propose it as a release (release manager)
  approve ID   approve a proposed release (release approver; M approvals activate it)
  revoke ID    revoke a proposed or active release (release manager or admin)
  list         list releases with status and approvals
  grant-role   grant release-manager or release-approver (default admin)

publish options:
  --kind model|firmware      what the file is
  --target TARGET            model: a device profile it serves (e.g. cmapss-fd001);
                             firmware: the hardware target (e.g. sim-mcu); or a 32-byte hex id
  --file FILE                the ONNX model or the firmware image
  --manifest FILE            model manifest (required for models; checked against the ONNX file:
                             sha256, size, input/output names and shapes); it must be published
                             beside the file (same folder, or its own ipfs:// CID)
  --uri URI                  where gateways fetch the file (repeatable, tried in order:
                             file://, https://, ipfs://CID; others, and URIs with
                             user:password@, are refused: URIs are public on chain); default:
                             file:// of the --file and ipfs://<its CID>
  --version N                release version (default: model manifest semver or firmware header
                             version as major*10^6 + minor*10^3 + patch, each part at most 999;
                             it must be that number, which gateways check)
  --dry-run                  print what would be proposed, send nothing

revoke options:
  --reason TEXT              why (stored on chain, ≤ 512 bytes)

grant-role options:
  --role manager|approver    --account ADDR

common options:
  --deployment FILE          deployment file written by "vigil chain deploy"
  --rpc URL                  JSON-RPC endpoint
  --key-file FILE            the caller's private key (mode 0600), or VIGIL_CHAIN_KEY (default:
                             anvil dev account #0, local chains only); list only reads: no key
  -h, --help                 this text

Contract errors are printed as sentences, e.g. "version 3 is not above 5, the latest model version
proposed for target 0x…" (VersionNotIncreasing).
`;
