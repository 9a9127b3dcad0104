"""End-to-end over pyzmq against the real `tally run`: events in -> snapshot out, consecutive seq,
the snapshot service (Clone pattern, unknown request), per-indicator topics, a slow subscriber that
never reads while another keeps receiving, every kind of bad input followed by good events that
count, the dead-letter file, acknowledged ingest with re-sent batches counted once, and SIGTERM
producing a final snapshot and exit 0.

usage: daemon_e2e.py TALLY_EXE PROJECT_DIR   (exit 0 = pass; the failure is printed)"""
import json, os, sys, tempfile, time
from tally_harness import Daemon, zmq, payment, value, check

exe, project = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="tally-e2e-")
dead = os.path.join(tmp, "dead.jsonl")
d = Daemon(exe, project, state_dir=os.path.join(tmp, "state"), interval="50ms",
           extra=["--dead-letter", dead, "--max-message-size", "64k", "--checkpoint-interval", "200ms"])
ctx = zmq.Context.instance()
try:
    first = d.start()
    base = value(first, "dvc.online_payments")

    # Subscribers: one reads everything, one per-indicator, one never reads (tiny HWM).
    fast = ctx.socket(zmq.SUB); fast.setsockopt(zmq.SUBSCRIBE, b"snapshot."); fast.connect(d.ep["pub"])
    one = ctx.socket(zmq.SUB); one.setsockopt(zmq.SUBSCRIBE, b"indicator.dvc.online_payments"); one.connect(d.ep["pub"])
    slow = ctx.socket(zmq.SUB); slow.setsockopt(zmq.RCVHWM, 1); slow.setsockopt(zmq.SUBSCRIBE, b""); slow.connect(d.ep["pub"])
    time.sleep(0.3)

    # Clone pattern: after subscribing, ask the service; published snapshots older than it are discarded.
    cloned = d.snapshot()
    check(cloned is not None and cloned["seq"] >= first["seq"], f"snapshot service answered {cloned}")
    err = d.snapshot(request=b"what?")
    check(err is not None and "error" in err, f"an unknown request must get an error object, got {err}")

    # Bad input of every kind, then good events in the same frames and after.
    push = ctx.socket(zmq.PUSH); push.connect(d.ep["ingest"])
    good = [payment(i, "good") for i in range(50)]
    bad_frames = [
        b"{not json",                                                     # malformed JSON
        json.dumps({**payment(1000, "bad"), "time": "yesterday"}).encode(),  # invalid time
        json.dumps({**payment(1001, "bad"), "data": {"payment": "x", "amount_vnd": "ten"}}).encode(),  # wrong type
        json.dumps({k: v for k, v in payment(1002, "bad").items() if k != "id"}).encode(),  # missing attribute
        json.dumps({**payment(1003, "bad"), "specversion": "0.3"}).encode(),  # bad specversion
        json.dumps({**payment(1004, "bad"), "type": "gov.unknown.thing", "data": {}}).encode(),  # unknown type: unrouted
        b"[1, 2, 3]",                                                     # a batch of non-objects
        b"",                                                              # empty frame
    ]
    for f in bad_frames:
        push.send(f)
    # a batch mixing bad and good: the good ones still count
    push.send(json.dumps(good[:10] + [{"specversion": "1.0"}] + good[10:20]).encode())
    for e in good[20:]:
        push.send(json.dumps(e).encode())
    # an oversized frame from its own socket (libzmq disconnects that peer)
    big = ctx.socket(zmq.PUSH); big.linger = 0; big.connect(d.ep["ingest"]); big.send(b"x" * (100 << 10))
    s = d.wait_for(lambda s: value(s, "dvc.online_payments") >= base + 50, what="the 50 good events")
    time.sleep(0.3)
    s = d.snapshot()
    check(value(s, "dvc.online_payments") == base + 50, f"expected {base + 50} payments, got {value(s, 'dvc.online_payments')}")
    # the same events again: counted once (source + id)
    for e in good[:10]:
        push.send(json.dumps(e).encode())
    time.sleep(0.3)
    s = d.snapshot()
    check(value(s, "dvc.online_payments") == base + 50, f"re-sent events were counted again: {value(s, 'dvc.online_payments')}")
    lines = [json.loads(l) for l in open(dead)] if os.path.exists(dead) else []
    reasons = {l.get("reason") for l in lines}
    for r in ("invalid_json", "bad_time", "missing_attribute", "bad_specversion"):
        check(r in reasons, f"dead-letter file lacks reason {r}: has {sorted(map(str, reasons))}")

    # Acknowledged ingest: a batch re-sent with the same sequence is answered again, applied once.
    dealer = ctx.socket(zmq.DEALER); dealer.connect(d.ep["ack"])
    batch1 = json.dumps([payment(i, "ack") for i in range(30)]).encode()
    batch2 = json.dumps([payment(i, "ack2") for i in range(20)]).encode()
    replies = []
    for seq, payload in ((b"1", batch1), (b"1", batch1), (b"2", batch2), (b"1", batch1)):
        dealer.send_multipart([b"", b"it-producer", seq, payload])
        check(dealer.poll(5000), f"no acknowledgement for sequence {seq}")
        f = dealer.recv_multipart()
        replies.append((f[-2], json.loads(f[-1])))
    check(replies[0][1]["accepted"] == 30 and replies[1][1] == replies[0][1], f"re-sent batch answered differently: {replies[:2]}")
    check(replies[2][1]["accepted"] == 20, f"batch 2: {replies[2]}")
    check(replies[3][1].get("already_applied") is True, f"an older sequence must be answered already_applied: {replies[3]}")
    bad = ctx.socket(zmq.DEALER); bad.connect(d.ep["ack"]); bad.send_multipart([b"", b"p", b"not-a-number", b"{}"])
    check(bad.poll(5000) and "error" in json.loads(bad.recv_multipart()[-1]), "a malformed acknowledged request must get an error object")
    s = d.wait_for(lambda s: value(s, "dvc.online_payments") == base + 100, what="50 acknowledged events counted once")

    # Consecutive seq on the subscriber that reads; the per-indicator topic.
    seqs = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if fast.poll(200):
            topic, body = fast.recv_multipart()
            check(topic == b"snapshot.national-dx", f"topic {topic}")
            seqs.append(json.loads(body)["seq"])
    check(len(seqs) >= 20, f"the reading subscriber got only {len(seqs)} snapshots in 3 s while another never reads")
    gaps = [b - a for a, b in zip(seqs, seqs[1:]) if b - a != 1]
    check(not gaps, f"seq not consecutive for the reading subscriber: {seqs[:50]}")
    check(one.poll(2000), "no message on indicator.dvc.online_payments")
    topic, body = one.recv_multipart()
    msg = json.loads(body)
    check(topic == b"indicator.dvc.online_payments" and msg["id"] == "dvc.online_payments" and "value" in msg["indicator"], f"per-indicator message {topic} {msg}")

    # SIGTERM: a final snapshot, exit 0.
    while fast.poll(0):
        fast.recv_multipart()
    last_seen = seqs[-1]
    rc = d.stop()
    check(rc == 0, f"SIGTERM exit code {rc}; log: {d.tail()}")
    final = None
    while fast.poll(500):
        final = json.loads(fast.recv_multipart()[1])
    check(final is not None and final["seq"] > last_seen and value(final, "dvc.online_payments") == base + 100,
          f"no final snapshot after SIGTERM (last seen seq {last_seen}, final {final and final['seq']})")

    # Restart: counts and seq survive.
    again = d.start()
    check(value(again, "dvc.online_payments") == base + 100, f"after restart: {value(again, 'dvc.online_payments')}")
    check(again["seq"] > final["seq"], f"seq went back after restart: {again['seq']} <= {final['seq']}")
    check(d.stop() == 0, "second SIGTERM")
    print("daemon_e2e: ok")
except AssertionError as e:
    print(f"daemon_e2e: FAILED: {e}\n--- daemon log ---\n{d.tail()}")
    sys.exit(1)
finally:
    if d.proc:
        d.proc.kill()
