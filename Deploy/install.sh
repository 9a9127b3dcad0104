#!/usr/bin/env bash
# Deploy/install.sh: install or upgrade Tally as a systemd service on Debian 12 (systemd 252).
#
#   sudo Deploy/install.sh                  build, install, enable, start (or restart on upgrade)
#   sudo Deploy/install.sh --curve          ... and create the server's CURVE keys, enable CURVE
#   Deploy/install.sh --prefix /tmp/root --no-start --binary .build/release/tally
#                                           lay the files out under a staging root (packaging, tests)
#
# Idempotent: running it again changes nothing that is already in place. It never overwrites an
# operator's edited tally.yaml or pipelines: a newer default is written next to it as FILE.dist.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install.sh [--prefix DIR] [--binary FILE] [--pipelines DIR] [--curve] [--no-start]

  --prefix DIR     install under DIR instead of / (also: DESTDIR=DIR); implies no systemctl,
                   no user creation, no chown
  --binary FILE    install this tally binary instead of building one
                   (default: swift build -c release --static-swift-stdlib --product tally)
  --pipelines DIR  pipeline files to install into /etc/tally/pipelines (default: the repo's Pipelines/)
  --curve          create /etc/tally/keys/server.key{,_secret} with `tally keys generate` if missing,
                   and enable curve-secret/authorized-keys in a newly installed tally.yaml
  --no-start       install the files (and reload systemd's view) but do not enable or start
  -h, --help       this text
USAGE
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$REPO/Deploy"
ROOT="${DESTDIR:-}"
BINARY=""
PIPELINES="$REPO/Pipelines"
START=1
CURVE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; ROOT="$2"; shift 2 ;;
    --prefix=*) ROOT="${1#*=}"; shift ;;
    --binary) [ $# -ge 2 ] || { echo "install.sh: --binary needs a file" >&2; exit 2; }; BINARY="$2"; shift 2 ;;
    --binary=*) BINARY="${1#*=}"; shift ;;
    --pipelines) [ $# -ge 2 ] || { echo "install.sh: --pipelines needs a directory" >&2; exit 2; }; PIPELINES="$2"; shift 2 ;;
    --pipelines=*) PIPELINES="${1#*=}"; shift ;;
    --curve) CURVE=1; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="${ROOT%/}"            # "" is the live system
LIVE=0
[ -z "$ROOT" ] && LIVE=1
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: installing on the live system needs root: run it with sudo, or use --prefix DIR to stage" >&2
  exit 2
fi

BIN_DIR="$ROOT/usr/local/bin"
UNIT_DIR="$ROOT/etc/systemd/system"
SYSUSERS_DIR="$ROOT/etc/sysusers.d"
DOC_DIR="$ROOT/usr/local/share/doc/tally"
CONF_DIR="$ROOT/etc/tally"

say() { printf '%s\n' "$*"; }

# install_file SRC DST MODE: always replaced by the new version (binary, unit: ours, not the operator's).
install_file() {
  local src="$1" dst="$2" mode="$3"
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    say "unchanged  $dst"
  else
    install -D -m "$mode" "$src" "$dst"
    say "installed  $dst"
  fi
}

# install_config SRC DST: the operator's file once it exists; a differing new default goes to DST.dist.
install_config() {
  local src="$1" dst="$2"
  if [ ! -e "$dst" ]; then
    install -D -m 0644 "$src" "$dst"
    say "installed  $dst"
  elif cmp -s "$src" "$dst"; then
    say "unchanged  $dst"
  elif [ -f "$dst.dist" ] && cmp -s "$src" "$dst.dist"; then
    say "kept       $dst (your edit; the new default is $dst.dist)"
  else
    install -m 0644 "$src" "$dst.dist"
    say "kept       $dst (your edit); new default written to $dst.dist: compare with diff -u"
  fi
}

# --- 1. The binary ---------------------------------------------------------------------------------
if [ -z "$BINARY" ]; then
  command -v swift >/dev/null 2>&1 || { echo "install.sh: swift not found; build elsewhere and pass --binary FILE" >&2; exit 1; }
  say "building   swift build -c release --static-swift-stdlib --product tally (in $REPO)"
  (cd "$REPO" && swift build -c release --static-swift-stdlib --product tally)
  BINARY="$REPO/.build/release/tally"
fi
[ -f "$BINARY" ] || { echo "install.sh: binary '$BINARY' does not exist" >&2; exit 1; }
install_file "$BINARY" "$BIN_DIR/tally" 0755

# --- 2. The unit, the user, the docs --------------------------------------------------------------
install_file "$DEPLOY/tally.service" "$UNIT_DIR/tally.service" 0644
install_file "$DEPLOY/sysusers.d/tally.conf" "$SYSUSERS_DIR/tally.conf" 0644
install_file "$DEPLOY/README.md" "$DOC_DIR/README.md" 0644

if [ "$LIVE" = 1 ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$SYSUSERS_DIR/tally.conf"
  elif ! getent passwd tally >/dev/null; then
    useradd --system --home-dir /var/lib/tally --no-create-home --shell /usr/sbin/nologin tally
  fi
  getent passwd tally >/dev/null && say "user       tally"
fi

# --- 3. Configuration and pipelines ---------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$CONF_DIR/pipelines" "$CONF_DIR/authorized"
config_source="$DEPLOY/tally.yaml"
if [ "$CURVE" = 1 ]; then
  config_source="$(mktemp)"
  trap 'rm -f "$config_source"' EXIT
  sed -e 's|^#curve-secret:|curve-secret:|' -e 's|^#authorized-keys:|authorized-keys:|' "$DEPLOY/tally.yaml" > "$config_source"
fi
install_config "$config_source" "$CONF_DIR/tally.yaml"

shopt -s nullglob
pipelines=("$PIPELINES"/*.yaml "$PIPELINES"/*.yml)
shopt -u nullglob
if [ ${#pipelines[@]} -eq 0 ]; then
  say "warning    no pipeline files in $PIPELINES; put one at $CONF_DIR/pipelines/ before starting"
fi
for pipeline in "${pipelines[@]}"; do
  install_config "$pipeline" "$CONF_DIR/pipelines/$(basename "$pipeline")"
done

# --- 4. CURVE keys ---------------------------------------------------------------------------------
if [ "$CURVE" = 1 ]; then
  install -d -m 0750 "$CONF_DIR/keys"
  if [ -f "$CONF_DIR/keys/server.key_secret" ]; then
    say "unchanged  $CONF_DIR/keys/server.key_secret"
  else
    "$BIN_DIR/tally" keys generate server --dir "$CONF_DIR/keys" || {
      echo "install.sh: '$BIN_DIR/tally keys generate server --dir $CONF_DIR/keys' failed; nothing started" >&2
      exit 1
    }
    say "created    $CONF_DIR/keys/server.key (give it to producers and subscribers) and server.key_secret"
  fi
  if [ "$LIVE" = 1 ]; then
    # The secret must be the service user's own and unreadable by anyone else (the daemon refuses it otherwise).
    chown root:tally "$CONF_DIR/keys"
    chown tally:tally "$CONF_DIR/keys/server.key_secret"
    chmod 0600 "$CONF_DIR/keys/server.key_secret"
  fi
  if ! grep -q '^curve-secret:' "$CONF_DIR/tally.yaml"; then
    say "note       $CONF_DIR/tally.yaml predates --curve: add 'curve-secret: /etc/tally/keys/server.key_secret'"
    say "           and 'authorized-keys: /etc/tally/authorized', then: systemctl restart tally"
  fi
fi

# --- 5. systemd ------------------------------------------------------------------------------------
if [ "$LIVE" = 0 ]; then
  say "staged     under $ROOT (no systemctl in --prefix mode)"
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  say "note       systemd is not running here; start it on the target with: systemctl enable --now tally"
  exit 0
fi
systemctl daemon-reload
if [ "$START" = 0 ]; then
  say "not started (--no-start): systemctl enable --now tally"
  exit 0
fi
# Refuse to (re)start on a pipeline that does not validate: the running daemon keeps serving.
for pipeline in "$CONF_DIR"/pipelines/*.yaml; do
  [ -f "$pipeline" ] || continue
  "$BIN_DIR/tally" check "$pipeline" >/dev/null || { echo "install.sh: $pipeline does not validate (tally check $pipeline); not starting" >&2; exit 1; }
done
systemctl enable tally.service
if systemctl is-active --quiet tally.service; then
  systemctl restart tally.service
  say "restarted  tally.service (upgrade)"
else
  systemctl start tally.service
  say "started    tally.service"
fi
systemctl --no-pager --lines=0 status tally.service || true
