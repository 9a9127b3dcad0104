#!/usr/bin/env python3
"""A pyzmq peer for Tally's security tests: certificates and CURVE clients.

Used by Tests/TallyDaemonTests/Security*.swift (run via Process) and usable by hand.

  zmq_peer.py create DIR NAME [key=value ...]   # zmq.auth.create_certificates, prints the public key
  zmq_peer.py load FILE                          # zmq.auth.load_certificate: "PUBLIC SECRET|-"
  zmq_peer.py push ENDPOINT SERVERKEY CERT|- PAYLOAD [COUNT]
  zmq_peer.py sub  ENDPOINT SERVERKEY CERT|- TIMEOUT_MS   # prints the first message's parts
  zmq_peer.py req  ENDPOINT SERVERKEY CERT|- REQUEST TIMEOUT_MS
  zmq_peer.py dealer ENDPOINT SERVERKEY CERT|- TIMEOUT_MS FRAME...   # acknowledged ingest

CERT is a `.key_secret` file (the client's keys) or `-` for no keys (NULL mechanism).
Exit codes: 0 done, 3 nothing received within the timeout, 4 pyzmq missing, 2 usage.
"""
import sys

try:
    import zmq
    import zmq.auth
except ImportError:  # pragma: no cover - reported to the Swift test
    sys.stderr.write("pyzmq is not installed: python3 -m pip install pyzmq\n")
    sys.exit(4)


def make_socket(ctx, kind, server_key, cert):
    s = ctx.socket(kind)
    s.linger = 1000
    if cert != "-":
        public, secret = zmq.auth.load_certificate(cert)
        s.curve_publickey = public
        s.curve_secretkey = secret
        s.curve_serverkey = server_key.encode()
    return s


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "create":
        meta = dict(kv.split("=", 1) for kv in argv[4:])
        public_file, _ = zmq.auth.create_certificates(argv[2], argv[3], metadata=meta or None)
        print(zmq.auth.load_certificate(public_file)[0].decode())
        return 0
    if cmd == "load":
        public, secret = zmq.auth.load_certificate(argv[2])
        print(public.decode(), secret.decode() if secret else "-")
        return 0
    ctx = zmq.Context()
    try:
        endpoint, server_key, cert = argv[2], argv[3], argv[4]
        if cmd == "push":
            s = make_socket(ctx, zmq.PUSH, server_key, cert)
            s.connect(endpoint)
            for _ in range(int(argv[6]) if len(argv) > 6 else 1):
                s.send(argv[5].encode())
            s.close()  # linger delivers (or gives up after 1 s when the handshake was refused)
            return 0
        if cmd == "sub":
            s = make_socket(ctx, zmq.SUB, server_key, cert)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(endpoint)
            if s.poll(int(argv[5])):
                print(" ".join(p.decode(errors="replace") for p in s.recv_multipart()))
                return 0
            return 3
        if cmd == "req":
            s = make_socket(ctx, zmq.REQ, server_key, cert)
            s.connect(endpoint)
            s.send(argv[5].encode())
            if s.poll(int(argv[6])):
                print(" ".join(p.decode(errors="replace") for p in s.recv_multipart()))
                return 0
            return 3
        if cmd == "dealer":
            s = make_socket(ctx, zmq.DEALER, server_key, cert)
            s.connect(endpoint)
            s.send_multipart([f.encode() for f in argv[6:]])
            if s.poll(int(argv[5])):
                print(" ".join(p.decode(errors="replace") for p in s.recv_multipart()))
                return 0
            return 3
        print(__doc__, file=sys.stderr)
        return 2
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
