#!/usr/bin/env bash
# Removes what hardware/pi/install.sh installed. Keeps the gateway's state and configuration
# (/var/lib/vigil: store, gateway key, sender key; /etc/vigil: config, keystore passphrase; the
# udev rules, a `systemctl edit` drop-in and the `vigil` user) unless --purge is given (confirmed
# with --yes, or by typing "purge" at a terminal), so a reinstall picks up where it left off.
# Also installed as /opt/vigil/hardware/pi/uninstall.sh.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: sudo hardware/pi/uninstall.sh [--prefix DIR] [--root DIR] [--no-systemctl] [--purge [--yes]]

  --prefix DIR     where the program was installed (default: the one the unit runs, else
                   /opt/vigil)
  --root DIR       remove from DIR as if it were / (as install.sh --root); implies --no-systemctl
  --no-systemctl   do not call systemctl or udevadm
  --purge          also delete /var/lib/vigil (frame store and outbox with any batches not yet
                   anchored; the gateway key: a registered key cannot be recovered; the sender
                   key: the only copy of a funded account's key if it was made on the box),
                   /etc/vigil, the udev rules, /etc/systemd/system/vigil.service.d (drop-ins)
                   and the vigil user; asks you to type "purge" at a terminal, else needs --yes
  --yes            confirms --purge without asking
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
yes=0
while (($#)); do
  case "$1" in
    --prefix) (($# >= 2)) || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --root) (($# >= 2)) || die "--root needs a directory"; root="$2"; shift 2 ;;
    --root=*) root="${1#*=}"; shift ;;
    --no-systemctl) use_systemctl=0; shift ;;
    --purge) purge=1; shift ;;
    --yes) yes=1; shift ;;
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
prefix="$(realpath -m -s -- "$prefix")"
[[ "$prefix" != / ]] || die "--prefix must be an absolute path other than / (got \"$prefix\")"
# The state and the config are kept without --purge: never delete them as "the program" (an install
# made with such a prefix before install.sh refused it).
resolved="$prefix"
if [[ -z "$root" ]]; then resolved="$(realpath -m -- "$prefix")"; fi
for kept in /var/lib/vigil /etc/vigil; do
  for p in "$prefix" "$resolved"; do
    if [[ "$p/" == "$kept/"* || "$kept/" == "$p/"* ]]; then
      die "the program folder $prefix is, is inside or holds $kept (the gateway's state or config, kept without --purge); refusing to delete it: remove the program's files by hand"
    fi
  done
done
dest="$root$prefix"
parent="$(dirname "$dest")"

is_vigil_install() {
  [[ -f "$1/package.json" ]] && grep -q '"name": "vigil"' "$1/package.json"
}
if [[ -e "$dest" ]] && ! is_vigil_install "$dest"; then
  die "$dest is not a Vigil install; refusing to delete it"
fi

# --purge deletes what nothing can bring back: confirmed before anything is removed.
if ((purge && !yes)); then
  lost="the gateway key (a registered key cannot be recovered), the sender key (a funded account's key) and the store with any batches not yet anchored"
  if [[ -t 0 ]]; then
    printf '%s\n' "--purge deletes /var/lib/vigil: $lost; /etc/vigil and the drop-ins with it." >&2
    printf 'Type purge to delete them: ' >&2
    answer=""
    read -r answer || true
    [[ "$answer" == purge ]] || die "not confirmed (you typed \"$answer\"); nothing was removed"
  else
    die "--purge would delete $lost in /var/lib/vigil; back up what you need and add --yes to confirm (nothing was removed)"
  fi
fi

# install.sh holds a lock on this folder while it works: wait for no one, refuse instead.
if [[ -d "$parent" ]]; then
  exec {lock_fd}<"$parent"
  flock -n "$lock_fd" ||
    die "install.sh is working in $parent (it holds a lock on that folder); wait for it to end and run this again"
fi

if ((use_systemctl)) && [[ -f "$unit" ]]; then
  systemctl disable --now vigil.service
fi
rm -f "$unit"
# A drop-in (`systemctl edit vigil`) is the operator's: kept like the config, unless --purge.
dropins="$root/etc/systemd/system/vigil.service.d"
if ((purge)); then rm -rf "$dropins"; fi
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
kept_previous=""
if [[ -e "$dest.previous" ]]; then
  # Only a Vigil install (or an empty folder): anything else there may be an operator's backup.
  if [[ -z "$(ls -A "$dest.previous")" ]] || is_vigil_install "$dest.previous"; then
    rm -rf "$dest.previous"
    removed+=("$dest.previous")
  else
    kept_previous="$dest.previous"
  fi
fi
# Staging folders of installers killed before they could clean up (the lock above is free, so
# none is running).
if [[ -d "$parent" ]]; then
  for d in "$parent"/.vigil-install.*; do
    [[ -d "$d" && ! -L "$d" ]] || continue
    if rm -rf -- "$d"; then removed+=("$d"); fi
  done
fi
rm -f "$root/etc/modules-load.d/vigil-serial.conf"
removed+=("/etc/modules-load.d/vigil-serial.conf")
printf -v list '%s, ' "${removed[@]}"
echo "removed ${list%, }"
if [[ -n "$kept_previous" ]]; then
  echo "kept $kept_previous: it is not a Vigil install (no package.json named vigil), so it is not the previous install; remove it yourself if you do not need it"
fi

if ((purge)); then
  rm -rf "$root/var/lib/vigil" "$root/etc/vigil" "$root/etc/udev/rules.d/99-vigil-serial.rules"
  if ((use_systemctl)) && command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules
  fi
  if ((!staged)) && id vigil >/dev/null 2>&1; then
    userdel vigil
  fi
  echo "purged /var/lib/vigil, /etc/vigil, the udev rules, /etc/systemd/system/vigil.service.d and the vigil user"
else
  dropin=""
  if [[ -d "$dropins" ]]; then dropin=", /etc/systemd/system/vigil.service.d (your systemctl edit drop-ins)"; fi
  echo "kept /var/lib/vigil (store, gateway key, sender key), /etc/vigil (config, passphrase), the udev rules$dropin and the vigil user; --purge --yes deletes them"
fi
