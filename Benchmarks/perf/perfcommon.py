"""Shared helpers of the performance drivers in this folder (ack_ingest, memory_flat, replay)."""
import json, socket

import zmq


def free_port():
    """A loopback TCP port free at the time of asking."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def snapshot(ctx, endpoint, timeout_ms=2000):
    """The daemon's latest snapshot from its snapshot service, or None when it does not answer."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    s.send_multipart([b"", b"snapshot"])
    ok = s.poll(timeout_ms)
    parts = [p for p in s.recv_multipart() if p] if ok else []
    s.close()
    return json.loads(parts[-1]) if parts else None
