#!/usr/bin/env python3
# usage: thread_profile.py PERFDATA BINARY [COMM] [N]: for a -g profile of one thread, (1) the first frame inside BINARY
# above each sample whose leaf is outside it (who calls memmove/retain/libzmq...), (2) inclusive samples per function.
import subprocess, sys, collections, re
data, binary = sys.argv[1], sys.argv[2]; comm = sys.argv[3] if len(sys.argv) > 3 else "tally-engine"
binname = binary.split("/")[-1]
mm = subprocess.run(["perf", "script", "-i", data, "--show-mmap-events"], capture_output=True, text=True).stdout
bases = {}
for line in mm.splitlines():
    if "PERF_RECORD_MMAP" in line and line.rstrip().endswith(binary) and "r-xp" in line:
        m = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\)", line)
        bases[int(m.group(1), 16)] = int(m.group(2), 16)
def off(ip):
    for b, ln in bases.items():
        if b <= ip < b + ln: return ip - b
    return None
pids = set()
for line in mm.splitlines():
    if "PERF_RECORD_MMAP" in line and line.rstrip().endswith(binary) and "r-xp" in line:
        pids.add(line.split()[1])
out = subprocess.run(["perf", "script", "-i", data, "--comm", comm, "--pid", ",".join(sorted(pids)), "-F", "ip,sym,dso"], capture_output=True, text=True).stdout
samples = []; cur = []
for line in out.splitlines():
    if not line.strip():
        if cur: samples.append(cur); cur = []
        continue
    parts = line.strip().split(None, 1)
    try: ip = int(parts[0], 16)
    except ValueError: continue
    rest = parts[1] if len(parts) > 1 else ""
    dso = rest[rest.rfind("(")+1:rest.rfind(")")].split("/")[-1] if "(" in rest else "?"
    sym = rest[:rest.rfind("(")].strip() if "(" in rest else rest
    o = (ip if ip < 0x10000000 else off(ip)) if dso == binname else None
    cur.append((o, sym, dso))
if cur: samples.append(cur)
addrs = sorted({o for s in samples for o, _, _ in s if o is not None})
r = subprocess.run(["addr2line", "-f", "-e", binary] + [hex(a) for a in addrs], capture_output=True, text=True).stdout.splitlines()
dem = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(r[0::2]), capture_output=True, text=True).stdout.splitlines()
names = dict(zip(addrs, dem))
def name(f): return (names.get(f[0]) if f[0] is not None else f"{f[1]} [{f[2]}]")[:140]
tot = len(samples)
print("samples", tot)
callers = collections.Counter(); incl = collections.Counter()
for s in samples:
    leaf = s[0]
    if leaf[0] is None:
        c = next((name(f) for f in s[1:] if f[0] is not None), "-")
        callers[(name(leaf)[:50], c)] += 1
    seen = set()
    for f in s:
        n = name(f)
        if n not in seen: incl[n] += 1; seen.add(n)
print("== leaf outside the binary -> first caller inside")
for (l, c), v in callers.most_common(45): print(f"{v:6d} {100*v/tot:5.1f}%  {l}  <-  {c}")
print("== inclusive")
for k, v in incl.most_common(int(sys.argv[4]) if len(sys.argv) > 4 else 70): print(f"{v:6d} {100*v/tot:5.1f}%  {k}")
