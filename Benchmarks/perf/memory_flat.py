#!/usr/bin/env python3
"""Memory flatness of `tally run` (write-ahead log on): RSS after 1 M events vs after 10 M events
with the same keys.

What "the same keys" means here: the 1 M-event bench file (`gen_events.py`, 3.5 days of event
time) is sent 10 times ("passes"). Pass k is the file with
  * every `id` made unique (its first two hex digits replaced by k), so nothing is a duplicate
    and every event is aggregated, and
  * every `time` moved k × 14 days later, so at the end of any pass the dedup horizon (7 days)
    holds exactly one pass's ids (~1 M): the remembered ids are the same number at 1 M and 10 M.
Every other value (endpoints, consumers, dossiers, beneficiaries, accounts, ...) repeats, so the
state tables, distinct sets and groups hold the same keys. What legitimately still grows is
time: 3.5 days of event time at 1 M, 129.5 days at 10 M, i.e. more daily/monthly buckets (memory
grows with buckets, never with events).

With `--warmup W --shift-days D`, W passes are sent first, each D days later than the previous
one, and the measurement starts after them: with W x D beyond the retention horizon (550 days)
the time-bucket state (rings, state-table row versions within the horizon) is already at its
steady size, so the measured passes compare like with like (flatness in the number of events,
not in the span of event time).

Usage (from the Tally checkout, after `swift build -c release --product tally`):
  python3 Benchmarks/perf/memory_flat.py --exe .build/release/tally --data /tmp/bench-perf/data/events_1000000.ndjson
  python3 Benchmarks/perf/memory_flat.py --exe .build/release/tally --data ... --warmup 10 --shift-days 60
Prints VmRSS / VmHWM of the daemon after each pass, and the ratio of the last measured pass to
the first measured one.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time

import zmq

import perfcommon
from perfcommon import free_port



def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def instant(text):
    import datetime
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def snapshot(ctx, endpoint):
    return perfcommon.snapshot(ctx, endpoint, timeout_ms=5000)   # a loaded daemon may answer slowly


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--pipeline", default="Pipelines/national-dx.yaml")
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--shift-days", type=int, default=14, help="event time moved this much per pass")
    ap.add_argument("--warmup", type=int, default=0, help="passes sent before the measured ones")
    args = ap.parse_args()

    lines = open(args.data, "rb").read().splitlines()
    last_time = json.loads(lines[-1])["time"]
    state = tempfile.mkdtemp(prefix="tally-memflat-")
    ports = [free_port() for _ in range(3)]
    ingest, service, pub = (f"tcp://127.0.0.1:{p}" for p in ports)
    log = open(os.path.join(state, "..", os.path.basename(state) + ".log"), "w")
    daemon = subprocess.Popen([args.exe, "run", "--pipeline", args.pipeline, "--state-dir", os.path.join(state, "s"),
                               "--ingest", ingest, "--snapshot-service", service, "--publish", pub,
                               "--snapshot-interval", "100ms"], stdout=log, stderr=subprocess.STDOUT)
    ctx = zmq.Context()
    try:
        for _ in range(300):
            if snapshot(ctx, service) is not None:
                break
            time.sleep(0.1)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 1000)
        push.connect(ingest)
        date_cache = {}
        import datetime

        def shifted_date(d, k):
            key = (d, k)
            if key not in date_cache:
                date_cache[key] = (datetime.date.fromisoformat(d.decode()) + datetime.timedelta(days=args.shift_days * k)).isoformat().encode()
            return date_cache[key]

        rows = []
        t_start = time.monotonic()
        for k in range(args.warmup + args.passes):
            prefix = b"%02x" % k
            frame = []
            for line in lines:
                i = line.find(b'"id":"')
                if i >= 0:
                    line = line[:i + 6] + prefix + line[i + 8:]
                j = line.find(b'"time":"')
                if j >= 0 and k:
                    line = line[:j + 8] + shifted_date(line[j + 8:j + 18], k) + line[j + 18:]
                frame.append(line)
                if len(frame) == args.batch:
                    push.send(b"[" + b",".join(frame) + b"]")
                    frame = []
            if frame:
                push.send(b"[" + b",".join(frame) + b"]")
            # Wait until the daemon has applied the whole pass (as_of = the pass's last event time).
            want = shifted_date(last_time[:10].encode(), k).decode() + last_time[10:]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                snap = snapshot(ctx, service)
                if snap and snap.get("as_of") and instant(snap["as_of"]) >= instant(want):
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"pass {k + 1}: the daemon did not reach as_of {want}")
            time.sleep(0.3)
            rss, hwm = proc_kib(daemon.pid, "VmRSS"), proc_kib(daemon.pid, "VmHWM")
            events = (k + 1 - args.warmup) * len(lines)
            if k >= args.warmup:
                rows.append((k + 1, events, rss, hwm))
            tag = "warm-up" if k < args.warmup else "measured"
            print(f"pass {k + 1:2d} ({tag}): {events:>11,} events  VmRSS {rss / 1024:7.1f} MiB  VmHWM {hwm / 1024:7.1f} MiB"
                  f"  as_of {snap['as_of']}  ({time.monotonic() - t_start:.0f} s)", flush=True)
        first, last = rows[0], rows[-1]
        print(json.dumps({"events_first": first[1], "rss_first_mib": round(first[2] / 1024, 1),
                          "events_last": last[1], "rss_last_mib": round(last[2] / 1024, 1),
                          "rss_ratio": round(last[2] / first[2], 3),
                          "hwm_first_mib": round(first[3] / 1024, 1), "hwm_last_mib": round(last[3] / 1024, 1)}))
        push.close()
    finally:
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        ctx.term()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
