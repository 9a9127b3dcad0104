#!/usr/bin/python3
"""Run a command under the system-call filter of Deploy/tally.service, without systemd.

Reads the unit's SystemCallFilter= lines (an allow-list, then ~deny lists), expands the @groups with
`systemd-analyze syscall-filter`, loads a seccomp filter answering EPERM to everything else (as
SystemCallErrorNumber=EPERM does), and execs the command. Used by check.sh to prove the Swift runtime,
libzmq and the daemon's own code live within the filter. Needs python3-seccomp (Debian).

Usage: sysfilter.py UNIT COMMAND [ARGS...]
"""
import os
import subprocess
import sys

import seccomp


def expand(item, seen):
    if not item.startswith("@"):
        return {item}
    if item in seen:
        return set()
    seen.add(item)
    out = subprocess.run(["systemd-analyze", "syscall-filter", item], capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= expand(entry, seen)
    return calls


def unit_filter(path):
    allowed, denied = None, set()
    with open(path) as unit:
        for line in unit:
            line = line.strip()
            if not line.startswith("SystemCallFilter="):
                continue
            value = line.split("=", 1)[1].strip()
            if value.startswith("~"):
                for item in value[1:].split():
                    denied |= expand(item, set())
            else:
                allowed = (allowed or set()) | set().union(*(expand(i, set()) for i in value.split()))
    if allowed is None:
        sys.exit(f"sysfilter: {path} has no SystemCallFilter= allow-list")
    return allowed - denied


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    allowed = unit_filter(sys.argv[1])
    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(1))  # EPERM
    count = 0
    for name in sorted(allowed | {"execve"}):
        try:
            rules.add_rule(seccomp.ALLOW, name)
            count += 1
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call on this architecture
    sys.stderr.write(f"sysfilter: {count} system calls allowed by {sys.argv[1]}, all others EPERM\n")
    rules.load()
    os.execv(sys.argv[2], sys.argv[2:])


main()
