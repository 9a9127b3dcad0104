#!/bin/sh
# Runs the same traffic through ztransport (C) and zmq-bench (Swift) in turn, C first, RUNS times
# each, and prints each side's median receiver messages/s and the ratio Swift / C.
#
#   compare.sh ZTRANSPORT ZMQ_BENCH push|pub FRAME_BYTES EVENTS RUNS [HWM]
set -eu
[ $# -ge 6 ] || { echo "usage: compare.sh ZTRANSPORT ZMQ_BENCH push|pub FRAME_BYTES EVENTS RUNS [HWM]" >&2; exit 2; }
c=$1; swift=$2; pattern=$3; size=$4; events=$5; runs=$6; hwm=${7:-}
here=$(dirname "$0")
rate() { sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
cr=""; sr=""
i=0
while [ $i -lt "$runs" ]; do
    cr="$cr $("$here/pair.sh" "$c" "$pattern" "$size" "$events" $hwm | rate)"
    sr="$sr $("$here/pair.sh" "$swift" "$pattern" "$size" "$events" $hwm | rate)"
    i=$((i + 1))
done
cm=$(echo $cr | tr ' ' '\n' | median); sm=$(echo $sr | tr ' ' '\n' | median)
echo "$pattern ${size}B x $events, hwm ${hwm:-default}, $runs runs each"
echo "  C     msgs/s:$cr  median $cm"
echo "  Swift msgs/s:$sr  median $sm"
awk -v s="$sm" -v c="$cm" 'BEGIN { printf "  Swift / C = %.3f\n", s / c }'
