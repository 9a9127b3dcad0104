#!/usr/bin/env bash
# Deploy/hardening/check.sh: run a command the way tally.service confines it, without systemd as PID 1:
# under the unit's SystemCallFilter= (seccomp, EPERM) and with W+X memory refused (PR_SET_MDWE, the
# kernel's form of MemoryDenyWriteExecute=, Linux >= 6.3). Exit status is the command's.
#
#   Deploy/hardening/check.sh .build/debug/tallyPackageTests.xctest --testing-library swift-testing --filter ZeroMQ
#
# Needs: a C compiler, python3-seccomp and systemd-analyze (Debian: gcc python3-seccomp systemd).
# This is how we found that libzmq aborts when ~@resources is filtered (pthread_setschedparam).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { echo "usage: check.sh COMMAND [ARGS...]" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/mdwe" "$here/mdwe.c"
command="$(command -v "$1")"
shift
exec /usr/bin/python3 "$here/sysfilter.py" "$here/../tally.service" "$work/mdwe" "$command" "$@"
