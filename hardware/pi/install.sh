#!/usr/bin/env bash
# Installs the Vigil gateway as a systemd service on a Raspberry Pi 4/5 with a 64-bit OS, or any
# aarch64/x86_64 Debian-like box (onnxruntime-node ships linux-arm64 and linux-x64, not armv7).
# Run as root from a clone or an unpacked release:  sudo hardware/pi/install.sh
#
# What it does (hardware/pi/README.md has the whole operator path):
#   1. checks the machine (aarch64/x86_64, Node.js >= 20.19, npm);
#   2. builds in a staging folder next to the prefix: `npm ci` with the dev dependencies,
#      `npm run build` (tsc → dist/), `npm prune --omit=dev`, then removes the TypeScript
#      sources, dev files and the native binaries of other platforms; checks that the compiled
#      CLI and onnxruntime load;
#   3. swaps the staging folder into place (/opt/vigil), so a failed build leaves the old install;
#   4. creates the `vigil` system user (group dialout), /etc/vigil (config, keystore passphrase)
#      and /var/lib/vigil (state), the unit, an example udev rules file and /usr/local/bin/vigil;
#   5. enables the unit, and restarts it only if it was running (an upgrade); if the new build
#      does not stay running, the previous install is put back and restarted.
# Idempotent: a second run rebuilds the program and keeps the config, the passphrase, the udev
# rules and everything in /var/lib/vigil (store, gateway key). The install an upgrade replaced
# is kept as <prefix>.previous, with the unit it ran under (<prefix>.previous/vigil.service);
# --rollback puts both back. One installer at a time works beside the prefix (a lock on its
# parent folder); staging folders a killed or power-cut installer left there are removed.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: sudo hardware/pi/install.sh [--prefix DIR] [--root DIR] [--no-systemctl] [--rollback]

  --prefix DIR     where the program goes (default /opt/vigil); the unit's paths follow it;
                   not /var/lib/vigil or /etc/vigil, nor inside or above them
  --rollback       build nothing: put back the install the last upgrade replaced (kept as
                   <prefix>.previous, with the unit it ran under; the replaced one takes its
                   place) and restart the service if it runs
  --root DIR       install into DIR as if it were / (images, packaging, tests): no root
                   needed, no user created, files keep the invoking user as owner; implies
                   --no-systemctl
  --no-systemctl   do not call systemctl or udevadm (an image build, a container)
  -h, --help       this text
EOF
}

die() {
  echo "vigil install: $*" >&2
  exit 1
}

root=""
prefix=/opt/vigil
use_systemctl=1
rollback=0
while (($#)); do
  case "$1" in
    --prefix) (($# >= 2)) || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --root) (($# >= 2)) || die "--root needs a directory"; root="$2"; shift 2 ;;
    --root=*) root="${1#*=}"; shift ;;
    --no-systemctl) use_systemctl=0; shift ;;
    --rollback) rollback=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

# "/opt/vigil/" is /opt/vigil: else the previous install would be "/opt/vigil/.previous", inside it.
while [[ "$prefix" == */ && "$prefix" != / ]]; do prefix="${prefix%/}"; done
# Paths end up in the unit file and in sed expressions: keep them plain.
safe_path='^/[A-Za-z0-9._/+-]*$'
[[ "$prefix" =~ $safe_path && "$prefix" != / ]] || die "--prefix must be an absolute path of letters, digits and ._/+- (got \"$prefix\")"
# "/opt/../var/lib/vigil" is /var/lib/vigil: the checks below (and the unit) see the plain path.
prefix="$(realpath -m -s -- "$prefix")"
[[ "$prefix" != / ]] || die "--prefix must be an absolute path other than / (got \"$prefix\")"
case "$prefix/" in
  /home/* | /root/* | /run/user/* | /tmp/* | /var/tmp/*)
    die "--prefix $prefix is hidden from the service (ProtectHome=yes, PrivateTmp=yes); choose a folder such as /opt/vigil" ;;
esac
# The program must not share a folder with the state (which the service user can write: it could
# replace code that root runs at the next `sudo vigil`) or the config, and uninstall.sh deletes
# the program folder: refuse the two folders, anything inside them and anything holding them.
# On the machine itself, also through a link (/opt/vigil -> /var/lib/vigil).
resolved="$prefix"
if [[ -z "$root" ]]; then resolved="$(realpath -m -- "$prefix")"; fi
for kept in /var/lib/vigil /etc/vigil; do
  for p in "$prefix" "$resolved"; do
    if [[ "$p/" == "$kept/"* || "$kept/" == "$p/"* ]]; then
      die "--prefix $prefix is, is inside or holds $kept (the gateway's state or config: the service writes there and uninstall.sh keeps it); choose a folder of its own such as /opt/vigil"
    fi
  done
done
if [[ -n "$root" ]]; then
  mkdir -p "$root"
  root="$(cd "$root" && pwd)"
  [[ "$root" =~ $safe_path ]] || die "--root must be a path of letters, digits and ._/+- (got \"$root\")"
  [[ "$root" == / ]] && root=""
fi
staged=0
if [[ -n "$root" ]]; then
  staged=1
  use_systemctl=0
elif ((EUID != 0)); then
  die "run as root: sudo $0 (or --root DIR to install into a folder)"
fi

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -f "$src/package.json" && -f "$src/package-lock.json" && -d "$src/gateway/src" ]] ||
  die "$src is not a Vigil source tree (run the installer from a clone or an unpacked release)"

# Node.js >= 20.19, as package.json "engines" and the README say.
command -v node >/dev/null 2>&1 || die "Node.js >= 20.19 is required and node is not on PATH"
node_version="$(node --version)"
if [[ ! "$node_version" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  die "cannot read the Node.js version from \"$node_version\""
fi
node_major="${BASH_REMATCH[1]}"
node_minor="${BASH_REMATCH[2]}"
if ((node_major < 20 || (node_major == 20 && node_minor < 19))); then
  die "Node.js >= 20.19 is required (found $node_version); install a newer Node.js (e.g. Node 22 LTS from nodejs.org or NodeSource) and run this again"
fi
command -v npm >/dev/null 2>&1 || die "npm is required next to node (found node $node_version but no npm on PATH)"
# The architecture node runs as, not the kernel's (uname -m): a 32-bit Raspberry Pi OS on a 64-bit
# kernel (a Pi 5, or kernel8.img on a Pi 4) reports aarch64 but runs an armhf node.
node_arch="$(node -p process.arch)"
case "$node_arch" in
  arm64 | x64) arch="$node_arch" ;;
  *) die "this Node.js is built for $node_arch: onnxruntime-node needs a 64-bit one (arm64 or x64); on a Pi install the 64-bit Raspberry Pi OS and its Node.js" ;;
esac
# The unit runs the node found on PATH by that name (not its resolved target, so upgrades through
# a version manager's link keep working), but the target must be visible to the service.
node_bin="$(command -v node)"
[[ "$node_bin" =~ $safe_path ]] || die "node is at an unusual path ($node_bin); put it in /usr/bin or /usr/local/bin"
case "$(readlink -f "$node_bin")" in
  /home/* | /root/* | /run/user/*)
    die "node is at $(readlink -f "$node_bin"), which the service cannot see (ProtectHome=yes); install Node.js system-wide (/usr/bin or /usr/local/bin)" ;;
esac

dest="$root$prefix"
etc="$root/etc/vigil"
state="$root/var/lib/vigil"
unit="$root/etc/systemd/system/vigil.service"
rules="$root/etc/udev/rules.d/99-vigil-serial.rules"
modules="$root/etc/modules-load.d/vigil-serial.conf"
link="$root/usr/local/bin/vigil"

# Never replace a folder that is not a previous Vigil install (e.g. --prefix /usr by mistake).
is_vigil_install() {
  [[ -f "$1/package.json" ]] && grep -q '"name": "vigil"' "$1/package.json"
}
if [[ -e "$dest" ]] && [[ -n "$(ls -A "$dest")" ]] && ! is_vigil_install "$dest"; then
  die "$dest exists and is not a Vigil install; choose another --prefix or remove it"
fi

# The install an upgrade replaced stays beside it, one generation, so a bad upgrade can be undone;
# an upgrade deletes the one before, so that must be a Vigil install too (not an operator's backup).
previous="$dest.previous"
if [[ -e "$dest" && -e "$previous" ]] && [[ -n "$(ls -A "$previous")" ]] && ! is_vigil_install "$previous"; then
  die "$previous is not a Vigil install and an upgrade would replace it with the current one; move it elsewhere and run this again"
fi
# The unit an install ran under goes with it into <prefix>.previous, so a rollback restores both (a
# new unit can be what made the new build fail).
kept_unit=vigil.service
swap_previous() {
  local tmp="$dest.swap.$$"
  mv "$dest" "$tmp"
  mv "$previous" "$dest"
  mv "$tmp" "$previous"
  if [[ -f "$dest/$kept_unit" ]]; then
    mv "$dest/$kept_unit" "$unit.rollback"
    if [[ -f "$unit" ]]; then cp -p "$unit" "$previous/$kept_unit"; fi
    mv "$unit.rollback" "$unit"
    if ((use_systemctl)); then systemctl daemon-reload; fi
  elif [[ -f "$unit" ]]; then
    cp -p "$unit" "$previous/$kept_unit"
  fi
}

# One installer (or uninstall.sh) at a time beside the prefix: a lock on the parent folder, held
# until this script and everything it started have ended (a SIGKILL or a power cut releases it).
# Holding it, every staging folder there is a leftover of an installer that no longer runs.
parent="$(dirname "$dest")"
lock_parent() {
  exec {lock_fd}<"$parent"
  flock -n "$lock_fd" ||
    die "another install.sh or uninstall.sh is working in $parent (it holds a lock on that folder); wait for it to end and run this again"
}
leftovers=()
remove_leftovers() {
  local d
  for d in "$parent"/.vigil-install.*; do
    [[ -d "$d" && ! -L "$d" ]] || continue
    rm -rf -- "$d" || true
    if [[ -e "$d" ]]; then leftovers+=("$d"); else echo "removed $d, left by an installer that no longer runs"; fi
  done
}

# Whether the build in $1 accepts the config the service runs with (unknown settings are refused:
# a config using a newer version's settings makes an older build exit at start, for ever).
accepts_config() {
  [[ -f "$etc/config.json" ]] || return 0
  (cd "$1" && node --input-type=module -e '
    const { loadConfigFile } = await import("./dist/gateway/src/config/config.js");
    try { loadConfigFile(process.argv[1]); } catch (e) { console.error(e.message); process.exit(1); }
  ' "$etc/config.json")
}

# After `systemctl restart`: the unit (Type=simple, Restart=always) must still be active, not
# restarted by systemd, after VIGIL_INSTALL_SETTLE_S seconds (default 15): a build that exits at
# start (a module that does not load, a fatal start-up error) is restarted every 2 s.
stays_up() {
  local before after i
  before="$(systemctl show -p NRestarts --value vigil.service 2>/dev/null || echo 0)"
  for ((i = 0; i < ${VIGIL_INSTALL_SETTLE_S:-15}; i++)); do
    sleep 1
    systemctl is-active --quiet vigil.service || return 1
  done
  after="$(systemctl show -p NRestarts --value vigil.service 2>/dev/null || echo 0)"
  [[ "$before" == "$after" ]]
}

if ((rollback)); then
  if [[ ! -d "$previous" ]] || ! is_vigil_install "$previous"; then
    die "there is no previous install at $previous to roll back to (it is kept by an upgrade)"
  fi
  [[ -d "$dest" ]] || die "$dest does not exist: nothing to roll back from"
  lock_parent
  remove_leftovers
  # Checked before anything is swapped, so a refusal leaves the running version as it is. A built
  # install has dist/; the checks need it (what is not built cannot be run).
  if [[ -f "$previous/dist/gateway/src/config/config.js" ]]; then
    # Builds older than the store format record (2026-12-03) do not refuse a store written by a
    # newer one: they misread it (a flags byte taken for a sequence number) instead of stopping.
    [[ -f "$previous/dist/gateway/src/store/format.js" ]] ||
      die "the previous install at $previous is older than the store format check and would misread a store written by this version; it cannot be rolled back to: install the version you want with this script instead"
    accepts_config "$previous" ||
      die "the previous install refuses $etc/config.json (above): it uses settings of this newer version; remove them and run --rollback again (nothing was changed)"
  fi
  running=0
  if ((use_systemctl)) && systemctl is-active --quiet vigil.service; then running=1; fi
  swap_previous
  if ((running)); then
    systemctl restart vigil.service
    if ! stays_up; then
      swap_previous
      systemctl restart vigil.service
      die "the previous install did not stay running (journalctl -u vigil -n 50 says why); this version is back in $dest and restarted"
    fi
  fi
  echo "rolled back: $dest is the previous install again; the one it replaced is now $previous"
  exit 0
fi

echo "== building in a staging folder (npm ci, npm run build, npm prune --omit=dev)"
install -d -m 0755 "$parent"
lock_parent
remove_leftovers
# The staging folder holds every dependency until the prune (610 MB measured; README): on a small
# SD card, say so before minutes of npm ci end in ENOSPC.
need_kb=$((700 * 1024))
free_kb="$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')"
if [[ "$free_kb" =~ ^[0-9]+$ ]] && ((free_kb < need_kb)); then
  if ((${#leftovers[@]})); then
    die "the build needs about 700 MB free in $parent and $((free_kb / 1024)) MB are; ${leftovers[*]}, left by an earlier installer, could not be removed (above): remove it, free some space (or use --prefix on a larger disk) and run this again"
  fi
  die "the build needs about 700 MB free in $parent and $((free_kb / 1024)) MB are; free some space (or use --prefix on a larger disk) and run this again"
fi
stage="$(mktemp -d "$parent/.vigil-install.XXXXXX")"
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT

# Sources only: no node_modules, no build output, no local state of a development checkout.
tar -C "$src" \
  --exclude=node_modules --exclude=dist --exclude=.vigil --exclude=.venv --exclude=__pycache__ \
  --exclude=contracts/out --exclude=contracts/cache --exclude='models/rotating/data' \
  -cf - package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json README.md \
  bin gateway device-sim models contracts hardware |
  tar -C "$stage" --no-same-owner --no-same-permissions -xf -
# As root, tar would keep the clone's owner and modes: the user who cloned could then edit code
# that runs as root (vigil keys, uninstall.sh) and as the service. Extracted as the installer's
# own files, with its umask; after the build nothing in the install is writable but by its owner.

# The build needs the dev dependencies (typescript); the service does not. Optional packages
# are only platform binaries of dev tools (anvil, forge: 124 MB) and of esbuild (tsx's, unused
# by the service), so they are not fetched. npm takes tarballs from its cache first.
# Each step has its own sentence: set -e alone ends with npm's or tsc's last line and exit code.
(cd "$stage" && npm ci --omit=optional --no-audit --no-fund --loglevel=error) ||
  die "npm ci failed (above); it needs the npm registry or a warm npm cache: connect the box to the network (or set npm's registry or proxy) and run this again; the installed version is unchanged"
(cd "$stage" && npm run build --silent) ||
  die "npm run build failed (above); the sources do not compile: install from a release or a clean checkout (git status) and run this again; the installed version is unchanged"
(cd "$stage" && npm prune --omit=dev --omit=optional --no-audit --no-fund --loglevel=error) ||
  die "npm prune failed (above); it needs the npm registry or a warm npm cache: connect the box to the network (or set npm's registry or proxy) and run this again; the installed version is unchanged"

echo "== keeping only what the service runs"
# TypeScript sources, tests, training scripts, Solidity and the C reference are not run on the
# gateway; the data files the compiled code reads stay (see gateway/src/util/paths.ts users:
# hardware/frame-json.schema.json, gateway/src/alerts/schemas/*.json, models/**).
rm -rf "$stage"/tsconfig.json "$stage"/tsconfig.build.json "$stage"/contracts "$stage"/models/eval \
  "$stage"/hardware/firmware-ref
find "$stage" -path "$stage/node_modules" -prune -o \( -name '*.ts' -o -name '*.py' \) -type f -print0 |
  xargs -0 rm -f
# tsx (and its esbuild binary) only runs the TypeScript sources, which are gone: bin/vigil.js
# loads dist/ when gateway/src/cli/main.ts is absent.
rm -rf "$stage"/node_modules/tsx "$stage"/node_modules/esbuild "$stage"/node_modules/@esbuild
find "$stage/node_modules/.bin" -xtype l -delete
# Native binaries of other platforms and architectures: onnxruntime-node ships darwin (86 MB)
# and win32 (134 MB) builds beside linux; classic-level and serialport carry prebuilds for
# android, darwin, win32 and 32-bit Linux.
ort="$stage/node_modules/onnxruntime-node/bin/napi-v6"
[[ -d "$ort/linux/$arch" ]] || die "onnxruntime-node has no linux/$arch binary in $ort"
for d in "$ort"/*/ "$ort"/linux/*/; do
  case "$d" in "$ort/linux/" | "$ort/linux/$arch/") ;; *) rm -rf "$d" ;; esac
done
while IFS= read -r -d '' pb; do
  for d in "$pb"/*/; do
    [[ "$(basename "$d")" == "linux-$arch" ]] || rm -rf "$d"
  done
done < <(find "$stage/node_modules" -type d -name prebuilds -print0)
# Folders left empty (npm prune keeps empty scope folders such as @foundry-rs).
find "$stage" -mindepth 1 -type d -empty -delete

echo "== checking the build"
[[ -f "$stage/dist/gateway/src/cli/main.js" ]] || die "npm run build did not produce dist/gateway/src/cli/main.js"
# (|| true: with pipefail, find ends with SIGPIPE when head has its three and closes the pipe)
left="$(find "$stage" -path "$stage/node_modules" -prune -o -name '*.ts' -type f -print | head -n 3)" || true
[[ -z "$left" ]] || die "TypeScript sources left in the install: $left"
# The CLI loads its commands lazily, so --help proves only that it starts: the runtime (and with it
# the store's and the serial port's native bindings) and onnxruntime's binding are loaded too.
VIGIL_DIST=1 node "$stage/bin/vigil.js" --help >/dev/null ||
  die "the compiled CLI does not start: VIGIL_DIST=1 node $stage/bin/vigil.js --help"
(cd "$stage" && node --input-type=module -e 'await import("./dist/gateway/src/runtime.js")') ||
  die "the compiled gateway does not load from $stage (dist/gateway/src/runtime.js)"
(cd "$stage" && node -e 'require("onnxruntime-node")') ||
  die "onnxruntime-node does not load from $stage/node_modules"
# An upgrade must accept the config the service runs with (unknown settings are refused): checked
# before the old install is replaced, so a refusal leaves it running.
accepts_config "$stage" ||
  die "this version refuses $etc/config.json (above); the installed version is unchanged: correct the file and run this again"
if ((!staged)); then chown -R root:root "$stage"; fi
chmod -R go-w "$stage"
chmod 0755 "$stage"

echo "== installing into $dest"
if [[ -e "$dest" ]]; then
  if [[ -e "$previous" ]] && [[ -n "$(ls -A "$previous")" ]] && ! is_vigil_install "$previous"; then
    die "$previous is not a Vigil install and an upgrade would replace it with the current one; move it elsewhere and run this again"
  fi
  rm -rf "$previous"
  mv "$dest" "$previous"
  # The unit the replaced install ran under goes with it (restored by a rollback).
  if [[ -f "$unit" ]]; then cp -p "$unit" "$previous/$kept_unit"; fi
fi
mv "$stage" "$dest"

if ((staged)); then
  own_etc=()
  own_state=()
else
  if ! id vigil >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/vigil --no-create-home --shell /usr/sbin/nologin \
      --user-group --groups dialout --comment "Vigil gateway" vigil
  fi
  usermod -a -G dialout vigil
  own_etc=(-o root -g vigil)
  own_state=(-o vigil -g vigil)
fi

# Config and secrets: created once, never overwritten.
install -d -m 0750 "${own_etc[@]}" "$etc"
if [[ ! -f "$etc/config.json" ]]; then
  install -m 0640 "${own_etc[@]}" "$src/hardware/pi/config.example.json" "$etc/config.json"
fi
if [[ ! -f "$etc/keystore.pass" ]]; then
  (
    umask 077
    head -c 32 /dev/urandom | base64 >"$etc/keystore.pass.tmp"
    mv "$etc/keystore.pass.tmp" "$etc/keystore.pass"
  )
fi
chmod 0600 "$etc/keystore.pass"
install -d -m 0700 "${own_state[@]}" "$state"

install -d -m 0755 "$(dirname "$unit")" "$(dirname "$rules")" "$(dirname "$link")"
sed -e "s#/opt/vigil#$prefix#g" -e "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" \
  "$src/hardware/pi/vigil.service" >"$unit.tmp"
chmod 0644 "$unit.tmp"
mv "$unit.tmp" "$unit"
if [[ ! -f "$rules" ]]; then
  install -m 0644 "$src/hardware/pi/99-vigil-serial.rules" "$rules"
fi
# The unit's DeviceAllow=char-ttyUSB / char-ttyACM name device classes that exist only once their
# driver is loaded, and systemd resolves them when the service starts: without an adapter at
# boot, one plugged in later would be refused until a restart. Load the drivers at every boot.
install -d -m 0755 "$(dirname "$modules")"
printf '# Vigil: USB serial drivers, loaded before vigil.service (see its DeviceAllow=)\nusbserial\ncdc_acm\n' >"$modules.tmp"
chmod 0644 "$modules.tmp"
mv "$modules.tmp" "$modules"
ln -sfn "$prefix/bin/vigil.js" "$link"

if ((use_systemctl)); then
  modprobe -a usbserial cdc_acm 2>/dev/null ||
    echo "note: usbserial/cdc_acm could not be loaded now (built in, or not in this kernel); $modules loads them at boot"
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules
    udevadm trigger --subsystem-match=tty
  fi
  systemctl daemon-reload
  systemctl enable vigil.service
  if systemctl is-active --quiet vigil.service; then
    systemctl restart vigil.service
    if stays_up; then
      echo "vigil.service restarted on the new build"
    elif [[ -d "$previous" ]] && is_vigil_install "$previous"; then
      swap_previous
      systemctl restart vigil.service
      die "the new build did not stay running (journalctl -u vigil -n 50 says why); the previous install is back in $dest and restarted, the new one is in $previous"
    else
      die "the new build did not stay running (journalctl -u vigil -n 50 says why), and there is no previous install to go back to"
    fi
  fi
fi

echo "installed $(du -sh "$dest" | cut -f1) in $dest"
echo "next (hardware/pi/README.md): edit /etc/vigil/config.json, create the key, register the gateway, then: sudo systemctl start vigil"
