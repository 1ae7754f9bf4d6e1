#!/usr/bin/env bash
# Removes what hardware/pi/install.sh installed. Keeps the gateway's state and configuration
# (/var/lib/vigil: store and gateway key; /etc/vigil: config, keystore passphrase; the udev rules
# and the `vigil` user) unless --purge is given, so a reinstall picks up where it left off.
# Also installed as /opt/vigil/hardware/pi/uninstall.sh.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: sudo hardware/pi/uninstall.sh [--prefix DIR] [--root DIR] [--no-systemctl] [--purge]

  --prefix DIR     where the program was installed (default: the one the unit runs, else
                   /opt/vigil)
  --root DIR       remove from DIR as if it were / (as install.sh --root); implies --no-systemctl
  --no-systemctl   do not call systemctl or udevadm
  --purge          also delete /var/lib/vigil (frame store, outbox, gateway key: a registered
                   key cannot be recovered), /etc/vigil, the udev rules and the vigil user
  -h, --help       this text
EOF
}

die() {
  echo "vigil uninstall: $*" >&2
  exit 1
}

root=""
prefix=""
use_systemctl=1
purge=0
while (($#)); do
  case "$1" in
    --prefix) (($# >= 2)) || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --root) (($# >= 2)) || die "--root needs a directory"; root="$2"; shift 2 ;;
    --root=*) root="${1#*=}"; shift ;;
    --no-systemctl) use_systemctl=0; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
# "/opt/vigil/" is /opt/vigil (its previous install is /opt/vigil.previous, not inside it).
while [[ "$prefix" == */ && "$prefix" != / ]]; do prefix="${prefix%/}"; done

staged=0
if [[ -n "$root" ]]; then
  [[ -d "$root" ]] || die "--root $root does not exist"
  root="$(cd "$root" && pwd)"
  [[ "$root" == / ]] && root=""
fi
if [[ -n "$root" ]]; then
  staged=1
  use_systemctl=0
elif ((EUID != 0)); then
  die "run as root: sudo $0"
fi

unit="$root/etc/systemd/system/vigil.service"
link="$root/usr/local/bin/vigil"
# Without --prefix: the folder the installed unit runs (install.sh --prefix writes it there), so an
# install elsewhere than /opt/vigil is not left behind while the unit is removed.
if [[ -z "$prefix" ]]; then
  prefix=/opt/vigil
  if [[ -f "$unit" ]]; then
    ran="$(sed -n 's#^ExecStart=[^ ]* \(/[^ ]*\)/bin/vigil\.js .*#\1#p' "$unit" | head -n 1)"
    [[ -n "$ran" ]] && prefix="$ran"
  fi
fi
[[ "$prefix" == /* && "$prefix" != / ]] || die "--prefix must be an absolute path other than / (got \"$prefix\")"
dest="$root$prefix"

if [[ -e "$dest" ]] && ! { [[ -f "$dest/package.json" ]] && grep -q '"name": "vigil"' "$dest/package.json"; }; then
  die "$dest is not a Vigil install; refusing to delete it"
fi

if ((use_systemctl)) && [[ -f "$unit" ]]; then
  systemctl disable --now vigil.service
fi
rm -f "$unit"
if ((use_systemctl)); then
  systemctl daemon-reload
fi
removed=("the unit")
if [[ -L "$link" && "$(readlink "$link")" == "$prefix/"* ]]; then
  rm -f "$link"
  removed+=("$link")
fi
if [[ -e "$dest" ]]; then
  rm -rf "$dest"
  removed+=("$dest")
fi
if [[ -e "$dest.previous" ]]; then
  rm -rf "$dest.previous"
  removed+=("$dest.previous")
fi
rm -f "$root/etc/modules-load.d/vigil-serial.conf"
removed+=("/etc/modules-load.d/vigil-serial.conf")
printf -v list '%s, ' "${removed[@]}"
echo "removed ${list%, }"

if ((purge)); then
  rm -rf "$root/var/lib/vigil" "$root/etc/vigil" "$root/etc/udev/rules.d/99-vigil-serial.rules"
  if ((use_systemctl)) && command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules
  fi
  if ((!staged)) && id vigil >/dev/null 2>&1; then
    userdel vigil
  fi
  echo "purged /var/lib/vigil, /etc/vigil, the udev rules and the vigil user"
else
  echo "kept /var/lib/vigil (store, gateway key), /etc/vigil (config, passphrase), the udev rules and the vigil user; --purge deletes them"
fi
