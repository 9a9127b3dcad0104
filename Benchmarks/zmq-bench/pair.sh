#!/bin/sh
# One measured transfer over tcp loopback: the receiver binds, the sender connects, the receiver's
# JSON line (messages/s, timed from its first frame to END) is printed on stdout.
#
#   pair.sh BINARY push|pub FRAME_BYTES EVENTS [HWM]
#
# BINARY is `zmq-bench` (this binding) or `ztransport` (C over libzmq): both take the same flags.
# HWM (optional) is passed as -H to both ends; use 0 for lossless PUB/SUB.
# SENDER (environment, optional) runs the sending end with another binary, so that one side can be
# compared alone (e.g. both receivers fed by the C sender).
set -eu
[ $# -ge 4 ] || { echo "usage: pair.sh BINARY push|pub FRAME_BYTES EVENTS [HWM]" >&2; exit 2; }
bin=$1; pattern=$2; size=$3; events=$4; hwm=${5:-}
case $pattern in push) recv_pattern=pull ;; pub) recv_pattern=sub ;; *) echo "pattern: push or pub" >&2; exit 2 ;; esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for attempt in 1 2 3 4 5; do
    port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    endpoint=tcp://127.0.0.1:$port
    $bin recv -p $recv_pattern -e $endpoint ${hwm:+-H $hwm} >"$out" 2>&1 &
    receiver=$!
    while ! grep -q READY "$out" 2>/dev/null; do
        kill -0 $receiver 2>/dev/null || break
        sleep 0.01
    done
    if grep -q READY "$out"; then
        ${SENDER:-$bin} send -p $pattern -e $endpoint -n $events -s $size ${hwm:+-H $hwm} 2>/dev/null
        wait $receiver
        grep '"role":"recv"' "$out"
        exit 0
    fi
    wait $receiver || true   # bind failed (port taken): try another port
done
echo "pair.sh: could not bind a loopback port" >&2
exit 1
