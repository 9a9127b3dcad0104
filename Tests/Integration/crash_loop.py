"""Crash loop (issue 5): several producers send acknowledged batches and retry (Lazy Pirate)
while the daemon is killed with SIGKILL at random moments and restarted on the same state dir.
At the end every acknowledged event is counted exactly once, every batch's final reply reports
all of its events accepted (a re-applied batch would answer `duplicates`), and the snapshot
seq never went back across restarts. Checkpoints are written every 300 ms (and every MiB
logged), so the kills land between, during and after checkpoints, and restarts recover from a
checkpoint plus the log after it.

With WINDOW > 1 each producer keeps that many batches in flight (the README's windowed retry
rules: on silence reconnect and re-send every unanswered batch in order; on a retryable error
re-send that batch). A batch that was durable but not the producer's newest is then answered
`already_applied` when re-sent after a crash: accepted as final, and the totals check that
nothing was lost (a never-durable batch answered `already_applied` would leave the count short).

usage: crash_loop.py TALLY_EXE PROJECT_DIR [ITERATIONS] [WINDOW]   (exit 0 = pass)"""
import json, os, random, re, sys, tempfile, threading, time
from tally_harness import Daemon, zmq, payment, value, check

exe, project = sys.argv[1], sys.argv[2]
iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 8
window = int(sys.argv[4]) if len(sys.argv) > 4 else 1
PRODUCERS, BATCHES, PER_BATCH = 3, 100000, 20
load_over = threading.Event()
retries = [0]
random.seed(20240415)
tmp = tempfile.mkdtemp(prefix="tally-crash-")
d = Daemon(exe, project, state_dir=os.path.join(tmp, "state"), interval="50ms",
           extra=["--checkpoint-interval", "300ms", "--checkpoint-bytes", "1MiB"])
ctx = zmq.Context.instance()
results = {}
errors = []


def producer(k):
    """Lazy Pirate: send, wait 400 ms, on silence reconnect and re-send the same sequence."""
    pid = f"crash-producer-{k}".encode()
    sock = None
    for seq in range(1, BATCHES + 1):
        if load_over.is_set():   # the kills are over: stop starting new batches
            break
        events = [payment(seq * 1000 + i, f"p{k}", amount=100 + k, second=seq) for i in range(PER_BATCH)]
        payload = json.dumps(events).encode()
        attempts = 0
        while (k, seq) not in results:
            if sock is None:
                sock = ctx.socket(zmq.DEALER)
                sock.linger = 0
                sock.connect(d.ep["ack"])
            sock.send_multipart([b"", pid, str(seq).encode(), payload])
            attempts += 1
            deadline = time.monotonic() + 0.4
            while (k, seq) not in results and time.monotonic() < deadline:
                if not sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                    break
                frames = sock.recv_multipart()
                reply = json.loads(frames[-1])
                if int(frames[-2]) != seq:      # a late answer to an earlier attempt
                    continue
                if "error" in reply:            # storage trouble: re-send the same sequence
                    time.sleep(0.05)
                    break
                results[(k, seq)] = reply
            if (k, seq) in results:
                break
            sock.close()
            sock = None
            retries[0] += 1
            if attempts > 200:
                errors.append(f"producer {k} batch {seq}: never acknowledged")
                return
        time.sleep(random.uniform(0, 0.012))
    if sock:
        sock.close()


def windowed_producer(k):
    """Up to `window` batches in flight, counted from the oldest unanswered one; on 400 ms of silence a new socket re-sends every
    unanswered batch in order; a retryable error re-sends that batch alone."""
    pid = f"crash-producer-{k}".encode()
    sock, inflight, seq, resends = None, {}, 0, 0   # inflight: seq -> [payload, sent_at, retry_at]

    def connect():
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(d.ep["ack"])
        return s

    sock = connect()
    while not (load_over.is_set() and not inflight):
        # The window is anchored at the oldest unanswered batch (as TCP's): at most `window`
        # sequences from it on, so a stuck batch is never overtaken by more than window - 1.
        while not load_over.is_set() and seq + 1 - min(inflight, default=seq + 1) < window and seq < BATCHES:
            seq += 1
            events = [payment(seq * 1000 + i, f"p{k}", amount=100 + k, second=seq) for i in range(PER_BATCH)]
            payload = json.dumps(events).encode()
            sock.send_multipart([b"", pid, str(seq).encode(), payload])
            inflight[seq] = [payload, time.monotonic(), None]
            time.sleep(random.uniform(0, 0.004))
        if not inflight:
            time.sleep(0.01)
            continue
        if sock.poll(50):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                q = int(frames[-2])
                if q not in inflight or inflight[q][2] is not None:
                    continue                    # a late answer to an earlier attempt
                reply = json.loads(frames[-1])
                if "error" in reply:            # storage trouble: this batch again, a little later
                    inflight[q][2] = time.monotonic() + 0.05
                    continue
                results[(k, q)] = reply
                del inflight[q]
        now = time.monotonic()
        for q in sorted(inflight):
            if inflight[q][2] is not None and now >= inflight[q][2]:
                inflight[q][1], inflight[q][2] = now, None
                sock.send_multipart([b"", pid, str(q).encode(), inflight[q][0]])
        if any(v[2] is None and now - v[1] > 0.4 for v in inflight.values()):
            sock.close()
            sock = connect()
            retries[0] += 1
            resends += 1
            if resends > 400:
                errors.append(f"producer {k}: batches never acknowledged: {sorted(inflight)[:5]}")
                return
            for q in sorted(inflight):
                if inflight[q][2] is None:
                    inflight[q][1] = now
                    sock.send_multipart([b"", pid, str(q).encode(), inflight[q][0]])
    sock.close()


try:
    d.start()
    threads = [threading.Thread(target=producer if window == 1 else windowed_producer, args=(k,)) for k in range(PRODUCERS)]
    for t in threads:
        t.start()
    seqs = []
    for i in range(iterations):
        if not any(t.is_alive() for t in threads):
            errors.append(f"the producers finished before kill {i + 1} of {iterations}: make the load longer")
            break
        time.sleep(random.uniform(0.2, 0.9))
        s = d.snapshot(timeout_ms=1000)
        if s:
            seqs.append(s["seq"])
        d.kill9()
        s = d.start()
        seqs.append(s["seq"])
    time.sleep(0.3)
    load_over.set()
    for t in threads:
        t.join(120)
    check(not errors, "; ".join(errors))
    per_producer = [max([q for (k, q) in results if k == p] or [0]) for p in range(PRODUCERS)]
    check(all(len([1 for (k, q) in results if k == p]) == n for p, n in enumerate(per_producer)),
          "a producer has a gap in its acknowledged sequences")
    total = len(results) * PER_BATCH
    # With a window, a durable batch re-sent after a crash that was not its producer's newest is
    # answered already_applied (only the newest reply is kept): final, and the totals below check it.
    wrong = {k: r for k, r in results.items()
             if not (window > 1 and r.get("already_applied")) and (r.get("accepted") != PER_BATCH or r.get("duplicates"))}
    check(not wrong, f"{len(wrong)} batch(es) answered with other counts than {PER_BATCH} accepted (applied twice?): {list(wrong.items())[:3]}")
    try:
        s = d.wait_for(lambda s: value(s, "dvc.online_payments") >= total, timeout=15, what=f"{total} payments")
    except AssertionError:
        s = d.snapshot()
        aa = sorted(k for k, r in results.items() if r.get("already_applied"))
        raise AssertionError(f"payments {s and value(s, 'dvc.online_payments')} != {total} acknowledged ({len(results)} batches of {PER_BATCH}); answered already_applied: {aa}")
    time.sleep(0.3)
    s = d.snapshot()
    check(value(s, "dvc.online_payments") == total, f"payments {value(s, 'dvc.online_payments')} != {total}")
    vnd = sum((100 + k) * n * PER_BATCH for k, n in enumerate(per_producer))
    check(value(s, "dvc.online_payments_vnd") == vnd, f"amount {value(s, 'dvc.online_payments_vnd')} != {vnd}")
    check(all(b > a for a, b in zip(seqs, seqs[1:])), f"seq went back across restarts: {seqs}")
    # one clean restart more: the same numbers
    check(d.stop() == 0, "SIGTERM")
    s2 = d.start()
    check(value(s2, "dvc.online_payments") == total, f"after a clean restart: {value(s2, 'dvc.online_payments')}")
    check(d.stop() == 0, "SIGTERM after the clean restart")
    log = d.tail(10_000_000)
    from_checkpoint = len(re.findall(r"checkpoint at LSN [1-9]", log))
    check(from_checkpoint >= iterations // 2,
          f"only {from_checkpoint} of {iterations + 1} restarts recovered from a checkpoint: the loop must cross checkpoints")
    check(len([n for n in os.listdir(os.path.join(tmp, "state")) if n.startswith("checkpoint-")]) == 2, "the newest two checkpoints are kept")
    print(f"crash_loop: ok (window {window}, {iterations} kill -9 under load, {retries[0]} producer re-sends, {total} events acknowledged and counted once, seqs {seqs[0]}..{seqs[-1]}, {from_checkpoint} restarts from a checkpoint)")
except AssertionError as e:
    print(f"crash_loop: FAILED: {e}\n--- daemon log ---\n{d.tail()}")
    sys.exit(1)
finally:
    if d.proc:
        d.proc.kill()
