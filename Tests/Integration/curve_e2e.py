"""End-to-end over pyzmq against the real `tally run` with CURVE on every endpoint (issue 7).

Keys: the server pair, a producer bound to `/province/hanoi` and a subscriber are made by
`tally keys generate`; one more authorized client is made by pyzmq's
`zmq.auth.create_certificates` (interop: no metadata, so both roles, any source), and a stranger's
key is made but never authorized. Every tally-made secret is loaded with `zmq.auth.load_certificate`.

Asserted, on the one daemon:
- ingest (PULL) and ingest-ack (ROUTER): the stranger, the subscriber-role key and a client with no
  CURVE at all get nothing through (no acknowledgement within the timeout, the count unchanged);
  the producer's pushed events count and its acknowledged batch is answered; the pyzmq key writes too;
- publish (PUB) and snapshot service (ROUTER): the subscriber and the pyzmq key receive snapshots and
  are answered; the stranger, the producer-role key and the no-CURVE client receive nothing and get
  no answer;
- the producer sending a batch with a `/province/danang/...` event next to a `/province/hanoi/...` one
  gets the first rejected `source_not_allowed` in the acknowledgement status, the other counted;
- refused handshakes are counted in `tally_handshakes_rejected_total{endpoint,reason}` (/metrics);
- SIGTERM: exit 0, a final snapshot reaches the allowed subscriber, none reaches the others.

usage: curve_e2e.py TALLY_EXE PROJECT_DIR   (exit 0 = pass; 3 = pyzmq missing; 1 = failed, printed)"""
import json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request
from tally_harness import Daemon, free_port, zmq, payment, value, check
import zmq.auth

exe, project = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="tally-curve-e2e-")
server_dir = os.path.join(tmp, "server")        # the daemon's own pair
clients_dir = os.path.join(tmp, "clients")      # the client pairs (secrets stay with the clients)
authorized = os.path.join(tmp, "authorized")    # --authorized-keys: public *.key files only
os.makedirs(authorized)

SILENCE_MS = 2000   # how long a refused client must stay unanswered / unfed
HANOI = "/province/hanoi/dvc"
DANANG = "/province/danang/dvc"


def tally_keys(*args):
    r = subprocess.run([exe, "keys", "generate", *args], cwd=project, capture_output=True, text=True)
    check(r.returncode == 0, f"tally keys generate {' '.join(args)} exited {r.returncode}: {r.stderr}")


# MARK: - Keys

tally_keys("server", "--dir", server_dir)
tally_keys("hanoi", "--dir", clients_dir, "--role", "producer", "--sources", "/province/hanoi")
tally_keys("dash", "--dir", clients_dir, "--role", "subscriber")
tally_keys("stranger", "--dir", clients_dir)                       # never authorized
py_public, py_secret = zmq.auth.create_certificates(clients_dir, "pyclient")
for name in ("hanoi", "dash"):
    shutil.copy(os.path.join(clients_dir, f"{name}.key"), authorized)
shutil.copy(py_public, authorized)

server_public, _ = zmq.auth.load_certificate(os.path.join(server_dir, "server.key"))
_, server_secret_check = zmq.auth.load_certificate(os.path.join(server_dir, "server.key_secret"))
check(server_secret_check, "pyzmq could not read a secret key from tally's server.key_secret")
KEYS = {name: zmq.auth.load_certificate(os.path.join(clients_dir, f"{name}.key_secret"))
        for name in ("hanoi", "dash", "stranger", "pyclient")}
KEYS["none"] = None   # a client with no CURVE at all (NULL mechanism)
for name, pair in KEYS.items():
    check(pair is None or (pair[0] and pair[1]), f"pyzmq could not load both keys of {name}.key_secret")

ctx = zmq.Context.instance()
sockets = []


def client(kind, endpoint, who, opts=()):
    """A pyzmq socket connected to `endpoint` as `who` (a KEYS name), CURVE client unless 'none'."""
    s = ctx.socket(kind)
    s.linger = 0
    pair = KEYS[who]
    if pair is not None:
        s.curve_serverkey = server_public
        s.curve_publickey, s.curve_secretkey = pair
    for k, v in opts:
        s.setsockopt(k, v)
    s.connect(endpoint)
    sockets.append(s)
    return s


class CurveDaemon(Daemon):
    """`tally run` with CURVE; its snapshot service is asked as the authorized subscriber `dash`."""

    def snapshot(self, timeout_ms=2000, request=b"snapshot", who="dash"):
        d = client(zmq.DEALER, self.ep["svc"], who)
        try:
            d.send_multipart([b"", request])
            if d.poll(timeout_ms) == 0:
                return None
            return json.loads([f for f in d.recv_multipart() if f][-1])
        finally:
            d.close()
            sockets.remove(d)


metrics_port = free_port()
d = CurveDaemon(exe, project, state_dir=os.path.join(tmp, "state"), interval="100ms",
                extra=["--curve-secret", os.path.join(server_dir, "server.key_secret"),
                       "--authorized-keys", authorized, "--metrics", f"127.0.0.1:{metrics_port}"])


def silent(socks, ms=SILENCE_MS):
    """The names of the sockets in `socks` ({name: socket}) that received anything within `ms`."""
    poller = zmq.Poller()
    for s in socks.values():
        poller.register(s, zmq.POLLIN)
    heard = set()
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        for s, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            heard.add(next(n for n, x in socks.items() if x is s))
            s.recv_multipart()
    return heard


def rejected_handshakes():
    """{(endpoint, reason): count} from the daemon's /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line.startswith("tally_handshakes_rejected_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.index("}")]))
            out[(labels.get("endpoint"), labels.get("reason"))] = float(line.rsplit(" ", 1)[1])
    return out


try:
    # The start itself proves the subscriber key is answered by the snapshot service.
    first = d.start()
    base = value(first, "dvc.online_payments")

    # MARK: - Snapshot service: only subscriber-capable authorized keys are answered
    asked = {}
    for who in ("dash", "pyclient", "stranger", "hanoi", "none"):
        s = client(zmq.DEALER, d.ep["svc"], who)
        s.send_multipart([b"", b"snapshot"])
        asked[who] = s
    answered = {}
    deadline = time.monotonic() + SILENCE_MS / 1000
    while time.monotonic() < deadline:
        for who, s in asked.items():
            if s.poll(0):
                answered[who] = json.loads([f for f in s.recv_multipart() if f][-1])
        time.sleep(0.02)
    check(set(answered) == {"dash", "pyclient"},
          f"snapshot service must answer exactly dash and pyclient, answered {sorted(answered)}")
    check(all(a.get("pipeline") == "national-dx" and "seq" in a for a in answered.values()),
          f"snapshot service answers are not snapshots: {answered}")

    # MARK: - Publish: only subscriber-capable authorized keys receive snapshots
    subs = {who: client(zmq.SUB, d.ep["pub"], who, [(zmq.SUBSCRIBE, b"snapshot.")])
            for who in ("dash", "pyclient", "stranger", "hanoi", "none")}
    heard = silent(subs)
    check(heard == {"dash", "pyclient"}, f"publication must reach exactly dash and pyclient, reached {sorted(heard)}")

    # MARK: - Ingest (PUSH): refused keys write nothing, the producer and the pyzmq key do
    for who in ("stranger", "dash", "none"):
        p = client(zmq.PUSH, d.ep["ingest"], who)
        for i in range(5):
            p.send(json.dumps(payment(i, f"push-{who}", source=HANOI)).encode())
    # The refused acknowledged producers, sent at the same time: answered never.
    refused_acks = {}
    for who in ("stranger", "dash", "none"):
        a = client(zmq.DEALER, d.ep["ack"], who)
        a.send_multipart([b"", f"ack-{who}".encode(), b"1",
                          json.dumps([payment(i, f"ack-{who}", source=HANOI) for i in range(7)]).encode()])
        refused_acks[who] = a
    acked = silent(refused_acks)
    check(not acked, f"acknowledged ingest answered refused clients: {sorted(acked)}")
    s = d.snapshot()
    check(value(s, "dvc.online_payments") == base,
          f"refused clients wrote: dvc.online_payments {value(s, 'dvc.online_payments')} != {base}")

    hanoi_push = client(zmq.PUSH, d.ep["ingest"], "hanoi")
    for i in range(10):
        hanoi_push.send(json.dumps(payment(i, "push-hanoi", source=HANOI)).encode())
    py_push = client(zmq.PUSH, d.ep["ingest"], "pyclient")
    py_push.send(json.dumps([payment(i, "push-py", source="/ndxp/portal") for i in range(4)]).encode())
    d.wait_for(lambda s: value(s, "dvc.online_payments") >= base + 14, what="14 events from hanoi and pyclient")

    # MARK: - Ingest-ack (DEALER): the producer is answered; another agency's source is refused
    dealer = client(zmq.DEALER, d.ep["ack"], "hanoi")
    dealer.send_multipart([b"", b"hanoi-agency", b"1",
                           json.dumps([payment(i, "ack-hanoi", source=HANOI) for i in range(6)]).encode()])
    check(dealer.poll(5000), "the authorized producer's acknowledged batch was not answered")
    reply = dealer.recv_multipart()
    status = json.loads(reply[-1])
    check(reply[-2] == b"1" and status.get("accepted") == 6 and not status.get("rejected"),
          f"acknowledged batch 1: {reply}")

    forged = [payment(0, "forged", source=HANOI), payment(1, "forged", source=DANANG + "/portal")]
    dealer.send_multipart([b"", b"hanoi-agency", b"2", json.dumps(forged).encode()])
    check(dealer.poll(5000), "the batch with another agency's source was not answered")
    reply = dealer.recv_multipart()
    status = json.loads(reply[-1])
    rejected = status.get("rejected") or []
    check(reply[-2] == b"2" and status.get("accepted") == 1, f"forged batch: expected 1 accepted, got {status}")
    check(len(rejected) == 1 and rejected[0].get("index") == 1 and rejected[0].get("reason") == "source_not_allowed",
          f"forged batch: expected index 1 rejected source_not_allowed, got {status}")

    total = base + 14 + 6 + 1
    d.wait_for(lambda s: value(s, "dvc.online_payments") >= total, what=f"{total} payments")
    time.sleep(0.5)   # anything refused that slipped in late would show now
    s = d.snapshot()
    check(value(s, "dvc.online_payments") == total,
          f"expected exactly {total} payments (base {base} + 10 hanoi + 4 pyclient + 6 acked + 1 of the forged batch), "
          f"got {value(s, 'dvc.online_payments')}")
    still = silent(refused_acks, 200)
    check(not still, f"refused acknowledged clients answered late: {sorted(still)}")

    # MARK: - Refused handshakes are counted by endpoint and reason
    counts = rejected_handshakes()
    for key in (("ingest", "unknown_key"), ("ingest", "wrong_role"), ("ingest-ack", "unknown_key"),
                ("ingest-ack", "wrong_role"), ("publish", "unknown_key"), ("publish", "wrong_role"),
                ("snapshot", "unknown_key"), ("snapshot", "wrong_role")):
        check(counts.get(key, 0) >= 1, f"tally_handshakes_rejected_total{key} not counted; have {counts}")

    # MARK: - SIGTERM: exit 0 and a final snapshot only for the allowed subscribers
    for sub in subs.values():
        while sub.poll(0):
            sub.recv_multipart()
    rc = d.stop()
    check(rc == 0, f"SIGTERM exit code {rc}")
    finals = {}
    for who, sub in subs.items():
        while sub.poll(500):
            finals[who] = json.loads(sub.recv_multipart()[-1])
    check(set(finals) <= {"dash", "pyclient"} and "dash" in finals,
          f"final snapshot must reach dash (and only authorized subscribers), reached {sorted(finals)}")
    check(value(finals["dash"], "dvc.online_payments") == total,
          f"final snapshot has {value(finals['dash'], 'dvc.online_payments')} payments, expected {total}")
    print("curve_e2e: ok")
except AssertionError as e:
    print(f"curve_e2e: FAILED: {e}\n--- daemon log ---\n{d.tail()}")
    sys.exit(1)
finally:
    if d.proc:
        d.proc.kill()
    for s in sockets:
        s.close()
    shutil.rmtree(tmp, ignore_errors=True)
