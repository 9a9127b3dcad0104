#!/usr/bin/env python3
# Wrapper: runs REAL tally with the given args (unchanged), samples /proc/<pid>/task/*/stat every 20 ms
# and at exit appends per-thread-name CPU seconds (utime+stime) to $THREADCPU_OUT (one JSON line).
import json, os, signal, subprocess, sys, time
real = os.environ["THREADCPU_EXE"]; out = os.environ.get("THREADCPU_OUT", "/tmp/threadcpu.jsonl")
p = subprocess.Popen([real] + sys.argv[1:])
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, lambda n, f: p.send_signal(n))
tick = os.sysconf("SC_CLK_TCK"); seen = {}
while p.poll() is None:
    try:
        for t in os.listdir(f"/proc/{p.pid}/task"):
            try:
                st = open(f"/proc/{p.pid}/task/{t}/stat").read()
            except OSError: continue
            comm = st[st.index("(")+1:st.rindex(")")]; f = st[st.rindex(")")+2:].split()
            seen[t] = (comm, (int(f[11]) + int(f[12])) / tick)
    except OSError: pass
    time.sleep(0.02)
agg = {}
for comm, c in seen.values(): agg[comm] = round(agg.get(comm, 0) + c, 2)
with open(out, "a") as fh: fh.write(json.dumps({"exe": real, "args": " ".join(sys.argv[1:3]), "threads": agg}) + "\n")
sys.exit(p.returncode)
