#!/usr/bin/env bash
# Checks hardware/pi/vigil.service offline (CI runs this; needs Debian's `systemd` package, not
# systemd as init):
#   - `systemd-analyze verify` prints nothing (it exits 0 on unknown keys and bad values, so any
#     output counts as a failure);
#   - `systemd-analyze security --offline=yes` scores at or below the exposure recorded in
#     hardware/pi/README.md (the line "Exposure score: **N**").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v systemd-analyze >/dev/null 2>&1 || {
  echo "check-unit: systemd-analyze not found (apt-get install systemd)" >&2
  exit 1
}

recorded="$(sed -n 's/^Exposure score: \*\*\([0-9]*\.[0-9]\)\*\*.*/\1/p' "$here/README.md")"
[[ -n "$recorded" ]] || {
  echo "check-unit: no \"Exposure score: **N.N**\" line in $here/README.md" >&2
  exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# As install.sh does: the unit names the node that is installed (verify checks the executable).
node_bin="$(command -v node)"
sed -e "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" "$here/vigil.service" >"$tmp/vigil.service"

out="$(cd "$tmp" && systemd-analyze verify vigil.service 2>&1)" || {
  echo "$out" >&2
  echo "check-unit: systemd-analyze verify failed" >&2
  exit 1
}
if [[ -n "$out" ]]; then
  echo "$out" >&2
  echo "check-unit: systemd-analyze verify reported problems" >&2
  exit 1
fi
echo "systemd-analyze verify: ok"

report="$(cd "$tmp" && systemd-analyze security --offline=yes --no-pager vigil.service 2>&1)" || true
score="$(sed -n 's/.*Overall exposure level for vigil.service: \([0-9]*\.[0-9]\).*/\1/p' <<<"$report")"
if [[ -z "$score" ]]; then
  echo "$report" >&2
  echo "check-unit: no exposure score in the systemd-analyze security output" >&2
  exit 1
fi
# Compare in tenths: bash has integer arithmetic only.
# Tenths as base-10 integers ("0.9" → 9, not the octal 09 that bash would refuse).
if ((10#${score/./} > 10#${recorded/./})); then
  grep '✗' <<<"$report" >&2 || true
  echo "check-unit: exposure score $score is above the recorded $recorded (hardware/pi/README.md)" >&2
  exit 1
fi
echo "systemd-analyze security: exposure $score (recorded $recorded)"
