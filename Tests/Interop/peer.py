#!/usr/bin/env python3
"""pyzmq peer for the Swift binding's interop test (Tests/ZeroMQTests/InteropTests.swift).

    python3 peer.py PULL_ENDPOINT ROUTER_ENDPOINT PUB_ENDPOINT

The Swift side binds a PULL, a ROUTER and a PUB on tcp://127.0.0.1:* and passes their endpoints.
This peer, a ZeroMQ implementation the binding's authors did not write, then:
  1. PUSH  -> Swift PULL:   "hello from pyzmq", then the multipart ["batch", "", "3"].
  2. DEALER (routing id "py-dealer") -> Swift ROUTER: ["ping", "42"]; expects ["pong", "42"] back.
  3. SUB (subscribed to "tally.") <- Swift PUB: waits for the first "tally." message, checks that no
     "other." message ever arrives, and reports what it got through the DEALER as
     ["got", topic, body]; the Swift side stops publishing when it sees that report.
  4. Expects ["bye"] on the DEALER, answers ["bye"], prints OK, exits 0.
Any mismatch or timeout: a message on stderr and exit status 1.
"""
import sys

import zmq

TIMEOUT_MS = 10000


def fail(why):
    print(f"peer.py: {why}", file=sys.stderr)
    sys.exit(1)


def recv_multipart(sock, what):
    try:
        return sock.recv_multipart()
    except zmq.Again:
        fail(f"timed out waiting for {what}")


def main():
    if len(sys.argv) != 4:
        fail("usage: peer.py PULL_ENDPOINT ROUTER_ENDPOINT PUB_ENDPOINT")
    pull_ep, router_ep, pub_ep = sys.argv[1:]
    ctx = zmq.Context()

    push = ctx.socket(zmq.PUSH)
    push.linger = 5000
    push.connect(pull_ep)
    push.send(b"hello from pyzmq")
    push.send_multipart([b"batch", b"", b"3"])

    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"py-dealer")
    dealer.rcvtimeo = TIMEOUT_MS
    dealer.linger = 5000
    dealer.connect(router_ep)
    dealer.send_multipart([b"ping", b"42"])
    reply = recv_multipart(dealer, "the ROUTER's reply")
    if reply != [b"pong", b"42"]:
        fail(f"ROUTER replied {reply!r}, expected [b'pong', b'42']")

    sub = ctx.socket(zmq.SUB)
    sub.rcvtimeo = TIMEOUT_MS
    sub.setsockopt(zmq.SUBSCRIBE, b"tally.")
    sub.connect(pub_ep)
    got = recv_multipart(sub, "a tally. publication")
    if not got[0].startswith(b"tally."):
        fail(f"SUB received {got!r}, which does not match its subscription")
    dealer.send_multipart([b"got"] + got)

    # Drain what is still published until the Swift side says bye; none may be "other.".
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(dealer, zmq.POLLIN)
    while True:
        events = dict(poller.poll(TIMEOUT_MS))
        if not events:
            fail("timed out waiting for bye")
        if sub in events:
            parts = sub.recv_multipart()
            if not parts[0].startswith(b"tally."):
                fail(f"SUB received {parts!r} outside its subscription")
        if dealer in events:
            msg = dealer.recv_multipart()
            if msg != [b"bye"]:
                fail(f"expected [b'bye'], got {msg!r}")
            dealer.send_multipart([b"bye"])
            break

    push.close()
    dealer.close()
    sub.close(linger=0)
    ctx.term()
    print("OK")


if __name__ == "__main__":
    main()
