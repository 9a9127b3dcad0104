"""Shared helpers for the daemon's pyzmq integration scripts: start `tally run` on free
loopback ports, ask the snapshot service, build catalog-valid events."""
import json, os, signal, socket, subprocess, sys, tempfile, time

try:
    import zmq
except ImportError:
    print("pyzmq is missing: install it with 'pip install pyzmq' (the integration tests talk to the daemon through it)")
    sys.exit(3)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    """One `tally run` process; the ports and the state dir survive restarts."""

    def __init__(self, exe, project, state_dir=None, interval="50ms", extra=()):
        self.exe, self.project, self.interval, self.extra = exe, project, interval, list(extra)
        self.state_dir = state_dir
        self.ports = {k: free_port() for k in ("ingest", "ack", "pub", "svc")}
        self.ep = {k: f"tcp://127.0.0.1:{p}" for k, p in self.ports.items()}
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(prefix="tally-it-", suffix=".log", delete=False)
        self.ctx = zmq.Context.instance()

    def args(self):
        a = [self.exe, "run", "--pipeline", "Pipelines/national-dx.yaml",
             "--ingest", self.ep["ingest"], "--ingest-ack", self.ep["ack"],
             "--publish", self.ep["pub"], "--snapshot-service", self.ep["svc"],
             "--snapshot-interval", self.interval] + self.extra
        if self.state_dir:
            a += ["--state-dir", self.state_dir]
        return a

    def start(self, timeout=20):
        self.proc = subprocess.Popen(self.args(), cwd=self.project, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tally exited with {self.proc.returncode} at start; log: {self.tail()}")
            s = self.snapshot(timeout_ms=300)
            if s is not None:
                return s
        raise SystemExit(f"tally did not answer on its snapshot service within {timeout}s; log: {self.tail()}")

    def snapshot(self, timeout_ms=2000, request=b"snapshot"):
        d = self.ctx.socket(zmq.DEALER)
        d.linger = 0
        d.connect(self.ep["svc"])
        d.send_multipart([b"", request])
        try:
            if d.poll(timeout_ms) == 0:
                return None
            frames = d.recv_multipart()
            return json.loads([f for f in frames if f][-1])
        finally:
            d.close()

    def wait_for(self, predicate, timeout=15, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.snapshot()
            if last is not None and predicate(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last snapshot: {json.dumps(last)[:600]}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"tally did not stop within {timeout}s after signal {sig}")
        self.proc = None
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def tail(self, n=3000):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")


def value(snap, indicator):
    v = snap["indicators"].get(indicator, {}).get("value")
    return 0 if v is None else v


def payment(i, prefix="e", amount=1000, second=0, source="dvc/portal"):
    """A valid dvc.payment.completed event (counted by dvc.online_payments)."""
    return {"specversion": "1.0", "id": f"{prefix}-{i}", "source": source, "type": "dvc.payment.completed",
            "time": f"2024-04-15T10:{(second // 60) % 60:02d}:{second % 60:02d}+07:00",
            "data": {"payment": f"pay-{prefix}-{i}", "amount_vnd": amount}}


def check(cond, message):
    if not cond:
        raise AssertionError(message)
