#!/usr/bin/env bash
# Installs Vigil on a Raspberry Pi (64-bit OS: onnxruntime-node ships linux-arm64, not armv7).
# Run as root from an unpacked release or a clone:  sudo hardware/pi/install.sh
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
arch="$(uname -m)"
if [[ "$arch" != "aarch64" && "$arch" != "x86_64" ]]; then
  echo "vigil: $arch is not supported (onnxruntime-node needs a 64-bit OS: aarch64 or x86_64)" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if (( node_major < 20 )); then
  echo "vigil: Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
id vigil >/dev/null 2>&1 || useradd --system --home /var/lib/vigil --shell /usr/sbin/nologin --groups dialout vigil
install -d -m 0755 /opt/vigil
cp -a "$src"/{package.json,package-lock.json,.npmrc,bin,gateway,device-sim,models,contracts,hardware,README.md} /opt/vigil/
(cd /opt/vigil && npm ci --omit=dev --no-audit --no-fund && npm run build --if-present || true)
install -d -m 0750 -o root -g vigil /etc/vigil
[[ -f /etc/vigil/config.json ]] || install -m 0640 -o root -g vigil "$src/hardware/pi/config.example.json" /etc/vigil/config.json
if [[ ! -f /etc/vigil/keystore.pass ]]; then
  umask 077
  head -c 32 /dev/urandom | base64 > /etc/vigil/keystore.pass
  chmod 0600 /etc/vigil/keystore.pass
fi
install -m 0644 "$src/hardware/pi/vigil.service" /etc/systemd/system/vigil.service
systemctl daemon-reload
systemctl enable --now vigil.service
systemctl --no-pager status vigil.service || true
