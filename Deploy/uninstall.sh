#!/usr/bin/env bash
# Deploy/uninstall.sh: stop and remove the Tally service.
#
#   sudo Deploy/uninstall.sh            remove the binary, unit and docs; keep config, keys and state
#   sudo Deploy/uninstall.sh --purge    ... and delete /etc/tally, /var/lib/tally, /var/log/tally
#                                       (the state: WAL, checkpoints, snapshot seq. Back it up first.)
#   Deploy/uninstall.sh --prefix DIR    the same under a staging root (no systemctl)
set -euo pipefail

usage() {
  echo "Usage: uninstall.sh [--prefix DIR] [--purge]"
}

ROOT="${DESTDIR:-}"
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "uninstall.sh: --prefix needs a directory" >&2; exit 2; }; ROOT="$2"; shift 2 ;;
    --prefix=*) ROOT="${1#*=}"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "uninstall.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
ROOT="${ROOT%/}"
LIVE=0
[ -z "$ROOT" ] && LIVE=1
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
  echo "uninstall.sh: needs root on the live system: run it with sudo" >&2
  exit 2
fi

say() { printf '%s\n' "$*"; }
remove() {
  local path
  for path in "$@"; do
    if [ -e "$path" ] || [ -L "$path" ]; then
      rm -rf -- "$path"
      say "removed    $path"
    fi
  done
}

if [ "$LIVE" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl disable --now tally.service 2>/dev/null || true
fi

remove "$ROOT/etc/systemd/system/tally.service" "$ROOT/usr/local/bin/tally" \
       "$ROOT/usr/local/share/doc/tally" "$ROOT/etc/sysusers.d/tally.conf"

if [ "$LIVE" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if [ "$PURGE" = 1 ]; then
  remove "$ROOT/etc/tally" "$ROOT/var/lib/tally" "$ROOT/var/lib/private/tally" "$ROOT/var/log/tally"
  if [ "$LIVE" = 1 ] && getent passwd tally >/dev/null; then
    userdel tally && say "removed    user tally"
  fi
else
  say "kept       $ROOT/etc/tally (configuration, keys) and $ROOT/var/lib/tally (state); --purge removes them"
fi
