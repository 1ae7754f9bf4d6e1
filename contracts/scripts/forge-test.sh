#!/usr/bin/env bash
# Runs the forge fuzz/invariant tests offline with the npm-installed forge binary and the solc-js shim.
# Usage: npm run test:forge [-- forge test args]; FOUNDRY_PROFILE=ci for the 10,000-run profile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
forge="$here/../node_modules/@foundry-rs/forge-$os-$arch/bin/forge"
if [ ! -x "$forge" ]; then
  echo "forge binary not found at $forge (npm ci installs @foundry-rs/forge)" >&2
  exit 1
fi
cd "$here"
exec "$forge" test --offline "$@"
