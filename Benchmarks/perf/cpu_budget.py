#!/usr/bin/env python3
"""CPU per event of every process in the `compare` runs: Tally (per thread), the C++ simdjson peer
(`cagg`) and the C sender that feeds each of them, on the same stream, alternated.

Why: on a machine where the receiver and the sender share the cores and keep them all busy (the
bench's 2-vCPU VM), events/s is roughly cores / (CPU per event of the receiver + of the sender).
So the `compare` ratio Tally / peer is bounded by (peer + its sender) / (Tally + its sender), whatever
the threads' overlap; this prints both sides of that bound and the ratio it predicts, next to the
events/s measured in the same runs.

Per run and per batch size (1 and 100 events per frame), alternated:
1. Tally: `tally run --state-dir D` (the log on, as `compare` runs it), the file sent once with the
   bench's C sender (`ztransport send`), polled on the snapshot service until the payment count is
   the file's; then every thread's CPU time (`/proc/PID/task/*/schedstat`, nanoseconds) is read
   before SIGTERM, so the final shutdown is not counted. Events/s as `bench.py` times it: from the
   sender's first frame to the detecting poll (so it includes up to one snapshot interval).
2. The peer: `cagg zmq -b B` fed the file 5 times (b1) or 10 times (b100), as `compare` does; its
   CPU (user + system, all threads) and the sender's are read with wait4.

Usage (from the Tally checkout; the bench folder set up as its README says):
  python3 Benchmarks/perf/cpu_budget.py --exe .build/release/tally --bench /tmp/bench-perf [--runs 3] [--json]
"""
import argparse, json, os, shutil, signal, statistics, subprocess, tempfile, threading, time

import zmq

from perfcommon import free_port, snapshot


class SenderCPU:
    """The sender's CPU while it sends: its threads' CPU time sampled every 5 ms with a timestamp, so
    that the part spent before its first frame (loading the file, building the frames: not in the
    timed interval, and paid once however often the file is repeated) can be taken off afterwards,
    at the `t0_mono` the sender reports."""

    def __init__(self, pid):
        self.pid, self.samples = pid, []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        # Per thread, the last value read: the threads of an exiting process disappear from /proc
        # one by one (a zombie lists only its main thread), and their CPU must not vanish with them.
        last, files = {}, {}
        while True:
            try:
                tids = os.listdir(f"/proc/{self.pid}/task")
            except OSError:
                tids = []
            for tid in tids:
                try:
                    if tid not in files:
                        files[tid] = open(f"/proc/{self.pid}/task/{tid}/schedstat", "rb", buffering=0)
                    f = files[tid]
                    f.seek(0)
                    last[tid] = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
            self.samples.append((time.monotonic(), sum(last.values())))
            try:
                exited = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                exited = True
            if exited:
                for f in files.values():
                    f.close()
                return
            time.sleep(0.005)

    def while_sending(self, t0):
        """CPU seconds from `t0` (CLOCK_MONOTONIC, as `time.monotonic()`) to the last sample."""
        self.thread.join()
        before = [ns for t, ns in self.samples if t <= t0]
        return (self.samples[-1][1] - (before[-1] if before else 0)) / 1e9


def sender_report(p):
    """The sender's JSON report (it writes it on stderr)."""
    return json.loads(p.stderr.read().strip().splitlines()[-1])


def wait4_cpu(p):
    """Waits for `p` and returns its CPU seconds (user + system, every thread)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime


def sender(bench, ingest, events, batch, data, end):
    """The bench's C sender; `end`: finish with the empty END frame that stops the peer (Tally would
    count it as a rejected payload)."""
    return subprocess.Popen([os.path.join(bench, "bin", "ztransport"), "send", "-p", "push", "-e", ingest,
                             "-n", str(events), "-b", str(batch), "-f", data, "-L", "-1"] + ([] if end else ["-E"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def thread_cpu(pid):
    """CPU nanoseconds per thread name (threads of one name summed)."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            ns = int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            continue
        out[comm] = out.get(comm, 0) + ns
    return out


def run_tally(args, ctx, batch, data, events, want_payments):
    ports = [free_port() for _ in range(3)]
    ingest, service, pub = (f"tcp://127.0.0.1:{p}" for p in ports)
    state = tempfile.mkdtemp(prefix="tally-cpu-")
    log = open(state + ".log", "w")
    d = subprocess.Popen([args.exe, "run", "--pipeline", args.pipeline, "--state-dir", state, "--ingest", ingest,
                          "--snapshot-service", service, "--publish", pub, "--snapshot-interval", "100ms"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while snapshot(ctx, service) is None:
            if time.monotonic() > deadline or d.poll() is not None:
                raise SystemExit(f"tally did not start (log: {log.name})")
            time.sleep(0.02)
        s = sender(args.bench, ingest, events, batch, data, end=False)
        sampler = SenderCPU(s.pid)
        deadline = time.monotonic() + 300
        while True:
            snap = snapshot(ctx, service)
            if snap and snap["indicators"].get("dvc.online_payments", {}).get("value") == want_payments:
                t_detect = time.monotonic()
                break
            if time.monotonic() > deadline:
                raise SystemExit("tally did not apply the whole file within 300 s")
            time.sleep(0.02)
        t0 = sender_report(s)["t0_mono"]
        s.wait()
        cpu_sender = sampler.while_sending(t0)
        threads = thread_cpu(d.pid)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(60)
        shutil.rmtree(state, ignore_errors=True)
        os.remove(log.name)
    return {"events_per_s": events / (t_detect - t0), "sender_ns": cpu_sender * 1e9 / events,
            "threads_ns": {k: v / events for k, v in threads.items()},
            "receiver_ns": sum(threads.values()) / events}


def run_peer(args, batch, data, events):
    ingest = f"tcp://127.0.0.1:{free_port()}"
    repeats = 5 if batch == 1 else 10
    c = subprocess.Popen([os.path.join(args.bench, "bin", "cagg"), "zmq", "-e", ingest, "-b", str(batch)],
                         stdout=subprocess.PIPE, text=True)
    assert c.stdout.readline().strip() == "READY", "cagg did not start"
    s = sender(args.bench, ingest, events * repeats, batch, data, end=True)
    sampler = SenderCPU(s.pid)
    t0 = sender_report(s)["t0_mono"]
    s.wait()
    cpu_sender = sampler.while_sending(t0)
    cpu_peer = wait4_cpu(c)
    result = json.loads(c.stdout.read().strip().splitlines()[-1])
    n = events * repeats
    return {"events_per_s": result["events_per_s"], "sender_ns": cpu_sender * 1e9 / n,
            "receiver_ns": cpu_peer * 1e9 / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exe", required=True, help="the tally binary")
    ap.add_argument("--bench", required=True, help="the bench folder (bin/ztransport, bin/cagg, data/)")
    ap.add_argument("--pipeline", default="Pipelines/national-dx.yaml")
    ap.add_argument("--events", type=int, default=1_000_000, help="which data/events_<N>.ndjson")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print every run as one JSON line too")
    args = ap.parse_args()
    data = os.path.join(args.bench, "data", f"events_{args.events}.ndjson")
    truth = json.load(open(os.path.join(args.bench, "data", f"events_{args.events}.expected.json")))
    want = truth["expected"]["per_type"]["dvc.payment.completed"]
    ctx = zmq.Context()
    runs = {(who, b): [] for who in ("tally", "peer") for b in (1, 100)}
    for r in range(args.runs):
        for b in (1, 100):
            runs[("tally", b)].append(run_tally(args, ctx, b, data, args.events, want))
            runs[("peer", b)].append(run_peer(args, b, data, args.events))
            if args.json:
                print(json.dumps({"run": r + 1, "batch": b, "tally": runs[("tally", b)][-1],
                                  "peer": runs[("peer", b)][-1]}))
    ctx.term()
    med = statistics.median
    print(f"CPU per event (ns), medians of {args.runs} alternated runs; 'with sender' adds the CPU of the C sender feeding it")
    for b in (1, 100):
        t, p = runs[("tally", b)], runs[("peer", b)]
        names = sorted({k for x in t for k in x["threads_ns"]}, key=lambda k: -med([x["threads_ns"].get(k, 0) for x in t]))
        per_thread = ", ".join(f"{k} {med([x['threads_ns'].get(k, 0) for x in t]):.0f}" for k in names
                               if med([x["threads_ns"].get(k, 0) for x in t]) >= 1)
        tr, ts, pr, ps = (med([x["receiver_ns"] for x in t]), med([x["sender_ns"] for x in t]),
                          med([x["receiver_ns"] for x in p]), med([x["sender_ns"] for x in p]))
        te, pe = med([x["events_per_s"] for x in t]), med([x["events_per_s"] for x in p])
        print(f"b{b}: tally {tr:.0f} ({per_thread}); with sender {tr + ts:.0f}")
        print(f"b{b}: peer  {pr:.0f}; with sender {pr + ps:.0f}")
        print(f"b{b}: predicted ratio (peer + sender) / (tally + sender) = {(pr + ps) / (tr + ts):.2f}; "
              f"measured events/s {te:,.0f} / {pe:,.0f} = {te / pe:.2f}")


if __name__ == "__main__":
    main()
