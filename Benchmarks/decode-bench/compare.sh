#!/usr/bin/env bash
# Interleaved decode-only comparison: Tally's decoder (decode-bench) vs the C++ simdjson peer
# (cagg file mode, -P = parse + validate only, and full = parse + validate + aggregate).
#   Benchmarks/decode-bench/compare.sh BENCH_DIR [ROUNDS]     (BENCH_DIR = a built copy of shared/bench)
# Prints, per configuration, the best single pass (events/s) over all rounds.
set -euo pipefail
B=${1:?bench dir}; R=${2:-3}
F=$B/data/events_1000000.ndjson
T=$(dirname "$0")/../../.build/release/decode-bench
best() { sort -n | tail -1; }
for b in 1 100; do
  tally=(); ccp=(); cfull=()
  for r in $(seq "$R"); do
    tally+=($("$T" "$F" --batch "$b" --passes 3 | sed -n 's/^pass .*, \([0-9]*\) events\/s$/\1/p'))
    ccp+=($("$B/bin/cagg" file -f "$F" -b "$b" -r 3 -P 2>&1 >/dev/null | sed -n 's/^pass .*: \([0-9.]*\) events\/s$/\1/p'))
    cfull+=($("$B/bin/cagg" file -f "$F" -b "$b" -r 3 2>&1 >/dev/null | sed -n 's/^pass .*: \([0-9.]*\) events\/s$/\1/p'))
  done
  t=$(printf '%s\n' "${tally[@]}" | best); p=$(printf '%s\n' "${ccp[@]}" | best); f=$(printf '%s\n' "${cfull[@]}" | best)
  printf 'batch %-3s tally decode+validate %10.0f ev/s | cagg -P parse+validate %10.0f ev/s | cagg full %10.0f ev/s | ratio vs -P %.2f\n' \
    "$b" "$t" "$p" "$f" "$(echo "$t / $p" | bc -l)"
done
