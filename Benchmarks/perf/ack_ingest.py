#!/usr/bin/env python3
"""Acknowledged ingest with group commit vs fire-and-forget, same daemon build, same file.

* fire-and-forget: the bench's C sender pushes the 1 M-event file in 100-event frames to
  `--ingest` (PUSH/PULL); timed from its first send until the snapshot shows every payment.
* acknowledged: P producers (threads, one DEALER each) send the same 100-event batches to
  `--ingest-ack` as [producer-id, sequence, payload], each with up to W batches outstanding,
  and wait for every reply (a reply is sent only after the batch's drain is fdatasync'd: group
  commit = one fdatasync per engine-loop drain, whatever the number of producers in it).
  Timed from the first send to the last reply; the replies' "accepted" must add up to the
  file's valid events.

Also printed: CPU seconds of the producers (this process, or the producer processes with
`--processes`: one interpreter each, no shared lock) and of the daemon's threads during the
acknowledged run, to tell which side is the limit.

`--producer c` runs the same producers (P DEALERs, window W, same batches, every reply
checked) as one C program, `ack_producer.c` next to this script, compiled with `cc` into the
temporary directory: on a 2-vCPU machine the Python producers take ~0.8 CPU-s per million
events, a third of the daemon's share, while the fire-and-forget side is sent by C
(ztransport). The default stays `python` (the figure the issue was measured with).

Usage (from the Tally checkout):
  python3 Benchmarks/perf/ack_ingest.py --exe .build/release/tally --bench /tmp/bench-perf [--producers 4] [--window 1] [--processes] [--producer python|c] [--skip-fire-and-forget]
"""
import argparse, json, multiprocessing, os, resource, shutil, socket, subprocess, tempfile, threading, time

import zmq

from perfcommon import free_port, snapshot




def start(exe, pipeline, tmp, name):
    ingest, ack, service, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(4))
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen([exe, "run", "--pipeline", pipeline, "--state-dir", os.path.join(tmp, name), "--ingest", ingest,
                          "--ingest-ack", ack, "--snapshot-service", service, "--publish", pub,
                          "--snapshot-interval", "100ms"], stdout=log, stderr=subprocess.STDOUT)
    return p, ingest, ack, service


def thread_cpu(pid):
    """CPU seconds (user + system) per thread name of process `pid`."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            st = open(f"/proc/{pid}/task/{t}/stat").read()
        except OSError:
            continue
        comm, f = st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()
        out[comm] = out.get(comm, 0) + (int(f[11]) + int(f[12])) / tick
    return out


def run_producer(ack, k, mine, window, barrier, results):
    """One acknowledged producer: a DEALER with up to `window` batches outstanding."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ack)
    pid = b"bench-producer-%d" % k
    sent_at = {}
    nxt, done, lat, accepted = 0, 0, [], 0
    barrier.wait()
    while done < len(mine):
        while nxt < len(mine) and nxt - done < window:
            seq = str(nxt + 1).encode()
            sent_at[seq] = time.monotonic()
            s.send_multipart([pid, seq, mine[nxt]])
            nxt += 1
        seq, reply = s.recv_multipart()[-2:]
        lat.append(time.monotonic() - sent_at.pop(seq))
        accepted += json.loads(reply)["accepted"]
        done += 1
    s.close()
    ctx.term()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    results.put((k, accepted, lat, ru.ru_utime + ru.ru_stime))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--pipeline", default="Pipelines/national-dx.yaml")
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--window", type=int, default=1, help="batches outstanding per producer")
    ap.add_argument("--processes", action="store_true", help="one process per producer instead of threads")
    ap.add_argument("--skip-fire-and-forget", action="store_true", help="only the acknowledged run")
    ap.add_argument("--producer", choices=["python", "c"], default="python",
                    help="who sends the acknowledged batches: Python threads (default) or ack_producer.c")
    args = ap.parse_args()
    data = os.path.join(args.bench, "data", "events_1000000.ndjson")
    truth = json.load(open(os.path.join(args.bench, "data", "events_1000000.expected.json")))
    valid, payments = truth["expected"]["valid"], truth["expected"]["per_type"]["dvc.payment.completed"]
    lines = open(data, "rb").read().splitlines()
    batches = [b"[" + b",".join(lines[i:i + 100]) + b"]" for i in range(0, len(lines), 100)]
    tmp = tempfile.mkdtemp(prefix="tally-ack-")
    ctx = zmq.Context()
    out = {}
    try:
        # Fire-and-forget, batched.
        if args.skip_fire_and_forget:
            out["fire_and_forget_b100_events_per_s"] = None
        else:
            fire_and_forget(args, ctx, tmp, data, lines, valid, payments, out)

        # Acknowledged, P producers.
        d, _, ack, service = start(args.exe, args.pipeline, tmp, "ack")
        while snapshot(ctx, service) is None:
            time.sleep(0.05)
        shares = [batches[i::args.producers] for i in range(args.producers)]
        accepted = [0] * args.producers
        latencies = []
        producer_cpu = 0.0
        cpu0 = thread_cpu(d.pid)
        if args.producer == "c":
            exe = os.path.join(tmp, "ack_producer")
            subprocess.run(["cc", "-O2", "-o", exe, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ack_producer.c"),
                            "-lzmq", "-lpthread"], check=True)
            r = subprocess.run([exe, "-e", ack, "-f", data, "-P", str(args.producers), "-b", "100", "-w", str(args.window)],
                               check=True, capture_output=True, text=True)
            got = json.loads(r.stdout)
            accepted, secs, producer_cpu = [got["accepted"]], got["secs"], got["cpu_s"]
            latencies = None
            p50, p99 = got["p50_ms"], got["p99_ms"]
        elif args.processes:
            mp = multiprocessing.get_context("fork")
            barrier, results = mp.Barrier(args.producers + 1), mp.Queue()
            procs = [mp.Process(target=run_producer, args=(ack, k, shares[k], args.window, barrier, results))
                     for k in range(args.producers)]
            for p in procs:
                p.start()
            barrier.wait()
            t0 = time.monotonic()
            for _ in procs:
                k, acc, lat, cpu = results.get()
                accepted[k] = acc
                latencies.extend(lat)
                producer_cpu += cpu
            secs = time.monotonic() - t0
            for p in procs:
                p.join()
        else:
            barrier, results = threading.Barrier(args.producers + 1), __import__("queue").Queue()
            threads = [threading.Thread(target=run_producer, args=(ack, k, shares[k], args.window, barrier, results))
                       for k in range(args.producers)]
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.monotonic()
            for t in threads:
                t.join()
            secs = time.monotonic() - t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            producer_cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
            while not results.empty():
                k, acc, lat, _ = results.get()
                accepted[k] = acc
                latencies.extend(lat)
        cpu1 = thread_cpu(d.pid)
        if latencies is not None:
            latencies.sort()
            p50, p99 = latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000
        out.update({
            "ack_producers": args.producers, "ack_window": args.window, "ack_processes": args.processes,
            "ack_producer": args.producer,
            "ack_events_per_s": round(sum(accepted) / secs), "ack_accepted": sum(accepted), "expected_valid": valid,
            "ack_reply_p50_ms": round(p50, 2),
            "ack_reply_p99_ms": round(p99, 2),
            "ack_seconds": round(secs, 3),
            "ack_producer_cpu_s": round(producer_cpu, 2),
            "ack_daemon_cpu_s": {k: round(v - cpu0.get(k, 0), 2) for k, v in cpu1.items() if v - cpu0.get(k, 0) >= 0.01},
        })
        if out["fire_and_forget_b100_events_per_s"]:
            out["ack_over_fire_and_forget"] = round(out["ack_events_per_s"] / out["fire_and_forget_b100_events_per_s"], 2)
        d.terminate(); d.wait(60)
        print(json.dumps(out))
    finally:
        ctx.term()
        shutil.rmtree(tmp, ignore_errors=True)


def fire_and_forget(args, ctx, tmp, data, lines, valid, payments, out):
    """The same file through PUSH/PULL in 100-event frames, timed until the snapshot shows it all."""
    if True:
        d, ingest, _, service = start(args.exe, args.pipeline, tmp, "ff")
        while snapshot(ctx, service) is None:
            time.sleep(0.05)
        r = subprocess.run([os.path.join(args.bench, "bin", "ztransport"), "send", "-p", "push", "-e", ingest, "-n",
                            str(len(lines)), "-b", "100", "-f", data, "-E", "-L", "-1"], check=True, capture_output=True, text=True)
        t0 = next(json.loads(l)["t0_mono"] for l in (r.stdout + r.stderr).splitlines() if "t0_mono" in l)
        while True:
            snap = snapshot(ctx, service)
            if snap and snap["indicators"].get("dvc.online_payments", {}).get("value") == payments:
                break
            time.sleep(0.02)
        out["fire_and_forget_b100_events_per_s"] = round(valid / (time.monotonic() - t0))
        d.terminate(); d.wait(60)


if __name__ == "__main__":
    main()
