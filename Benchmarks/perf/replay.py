#!/usr/bin/env python3
"""Replay speed of `tally run`: how fast a restart re-applies the write-ahead log.

1. `tally run --state-dir D` ingests the 1 M-event bench file (100 events per frame, sent with
   the bench's C sender), waits until the snapshot shows the last event time, then SIGKILL: a
   crash, so there is no final checkpoint (a clean shutdown checkpoints and truncates the log
   behind it). The run takes no checkpoint either (`--checkpoint-interval 24h
   --checkpoint-bytes 1024GiB`), so the log holds every record.
2. Any checkpoint-*.bin is removed (there should be none), so the restart must replay the whole
   log (the worst case).
3. `tally run --state-dir D` again: the daemon logs `recovered records=N milliseconds=M`; that
   line is read back and N and M are printed as logged records/s. The log's size is printed too.

Usage (from the Tally checkout):
  python3 Benchmarks/perf/replay.py --exe .build/release/tally --bench /tmp/bench-perf [--drop-caches]

`--drop-caches` (root) empties the kernel's page cache before the restart, as a reboot would. Since
round 11 the log's fire-and-forget appends bypass the page cache (O_DIRECT), so the replay reads the
disk with or without it; a log written through the cache was replayed from memory without it.
"""
import argparse, glob, json, os, re, shutil, signal, socket, subprocess, tempfile, time

import zmq

from perfcommon import free_port, snapshot




def start(exe, pipeline, state, logpath, extra=()):
    ports = [free_port() for _ in range(3)]
    ingest, service, pub = (f"tcp://127.0.0.1:{p}" for p in ports)
    log = open(logpath, "w")
    t0 = time.monotonic()
    p = subprocess.Popen([exe, "run", "--pipeline", pipeline, "--state-dir", state, "--ingest", ingest,
                          "--snapshot-service", service, "--publish", pub, "--snapshot-interval", "100ms", *extra],
                         stdout=log, stderr=subprocess.STDOUT)
    return p, ingest, service, t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--bench", required=True, help="the bench folder (bin/ztransport, data/)")
    ap.add_argument("--pipeline", default="Pipelines/national-dx.yaml")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the kernel's page cache before the restart (root): a cold replay, as after a reboot. "
                         "Without it, a log written through the page cache is replayed from memory, while one "
                         "written with O_DIRECT (the default since round 11) is read from the disk either way")
    args = ap.parse_args()
    data = os.path.join(args.bench, "data", f"events_{args.events}.ndjson")
    truth = json.load(open(os.path.join(args.bench, "data", f"events_{args.events}.expected.json")))
    tmp = tempfile.mkdtemp(prefix="tally-replay-")
    state = os.path.join(tmp, "state")
    ctx = zmq.Context()

    def ready(service, deadline):
        while time.monotonic() < deadline:
            if snapshot(ctx, service) is not None:
                return True
            time.sleep(0.02)
        return False

    try:
        d, ingest, service, _ = start(args.exe, args.pipeline, state, os.path.join(tmp, "run1.log"),
                                      ("--checkpoint-interval", "24h", "--checkpoint-bytes", "1024GiB"))
        assert ready(service, time.monotonic() + 60), "the daemon did not start"
        subprocess.run([os.path.join(args.bench, "bin", "ztransport"), "send", "-p", "push", "-e", ingest,
                        "-n", str(args.events), "-b", "100", "-f", data, "-E", "-L", "-1"],
                       check=True, stdout=subprocess.DEVNULL)
        want = truth["expected"]["per_type"]["dvc.payment.completed"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            snap = snapshot(ctx, service)
            if snap and snap["indicators"].get("dvc.online_payments", {}).get("value") == want:
                break
            time.sleep(0.05)
        d.send_signal(signal.SIGKILL)
        d.wait(120)
        for f in glob.glob(os.path.join(state, "checkpoint-*.bin")):
            os.remove(f)
        log_bytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(state, "wal-*.log")))
        if args.drop_caches:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        d, ingest, service, t0 = start(args.exe, args.pipeline, state, os.path.join(tmp, "run2.log"))
        assert ready(service, time.monotonic() + 120), "the daemon did not restart"
        start_s = time.monotonic() - t0
        d.send_signal(signal.SIGTERM)
        d.wait(120)
        text = open(os.path.join(tmp, "run2.log")).read()
        line = next((l for l in text.splitlines() if re.search(r"\brecovered\b", l) and "records=" in l), None)
        if line is None:
            raise SystemExit(f"no 'recovered' line in the log: {text[-2000:]}")
        records = int(re.search(r"records=(\d+)", line).group(1))
        ms = int(re.search(r"milliseconds=(\d+)", line).group(1))
        # Records are frames of 100 events (plus one meta record per run).
        print(json.dumps({"log_records": records, "logged_events": args.events, "log_bytes": log_bytes,
                          "replay_ms": ms, "events_per_s": round(args.events / (ms / 1000)) if ms else None,
                          "restart_to_first_answer_s": round(start_s, 3), "page_cache_dropped": args.drop_caches}))
    finally:
        ctx.term()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
