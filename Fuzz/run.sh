#!/usr/bin/env bash
# Fuzz the event decoder and the pipeline parser with libFuzzer under AddressSanitizer.
#
#   Fuzz/run.sh [SECONDS] [decoder|pipeline|all]     default: 60 s each, both targets
#
# What it does:
#   1. builds TallyEngine (and Yams) with `-sanitize=fuzzer -sanitize=address` into .build-fuzz/;
#   2. links each harness in Fuzz/Harness/ (an @_cdecl("LLVMFuzzerTestOneInput") entry) against it;
#   3. runs each target for SECONDS on a copy of its committed corpus (Fuzz/corpus/<target>/), so CI
#      never writes into the repository; new interesting inputs land in .build-fuzz/corpus/<target>/.
# A crash, an ASan report, a precondition failure, a leak-free timeout (>10 s on one input) or an
# out-of-memory (>2 GiB) fails the script; libFuzzer writes the input to .build-fuzz/artifacts/.
# Turn such an input into a regression test (Tests/TallyDaemonTests/SecurityFuzzRegressionTests.swift,
# and copy it into Fuzz/corpus/<target>/) before fixing the bug.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
WHICH="${2:-all}"
SCRATCH=.build-fuzz
OUT="$SCRATCH/fuzz"
mkdir -p "$OUT" "$SCRATCH/artifacts"

# 0. Does this toolchain have libFuzzer? (Swift on Linux ships it; say so clearly if not.)
probe="$OUT/probe.swift"
printf '@_cdecl("LLVMFuzzerTestOneInput") public func f(_ d: UnsafePointer<UInt8>?, _ n: Int) -> CInt { 0 }\n' > "$probe"
if ! swiftc -sanitize=fuzzer,address -parse-as-library "$probe" -o "$OUT/probe" >/dev/null 2>&1; then
  echo "fuzz: this swiftc cannot build with -sanitize=fuzzer,address (no libFuzzer runtime); cannot fuzz" >&2
  exit 1
fi

# 1. The engine, instrumented.
echo "fuzz: building TallyEngine with -sanitize=fuzzer,address ..."
swift build --scratch-path "$SCRATCH" --target TallyEngine \
  -Xswiftc -sanitize=fuzzer -Xswiftc -sanitize=address 2>&1 | grep -E "error|warning: unre|Compiling TallyEngine|Build" || true
BIN="$SCRATCH/debug"
test -f "$BIN/Modules/TallyEngine.swiftmodule" || { echo "fuzz: the TallyEngine build failed" >&2; exit 1; }
# TallyEngine and everything it links: Yams (+ its C libyaml) and CTallyCRC (hardware CRC-32C, prefetch).
OBJECTS=( $(find "$BIN/TallyEngine.build" "$BIN/Yams.build" "$BIN/CYaml.build" "$BIN/CTallyCRC.build" -name '*.o' | sort) )
CYAML_MAP=$(find "$SCRATCH" -path '*CYaml*' -name module.modulemap | head -1)
CRC_MAP=$(find "$SCRATCH" -path '*CTallyCRC.build*' -name module.modulemap | head -1)

build_target() {
  local name="$1"
  echo "fuzz: linking $name ..."
  swiftc -sanitize=fuzzer,address -parse-as-library -g \
    -I "$BIN/Modules" ${CYAML_MAP:+-Xcc -fmodule-map-file="$CYAML_MAP"} \
    ${CRC_MAP:+-Xcc -fmodule-map-file="$CRC_MAP"} -Xcc -I -Xcc Sources/CTallyCRC/include \
    "Fuzz/Harness/$name.swift" "${OBJECTS[@]}" -o "$OUT/fuzz-$name" 2>&1 | grep -v "Cannot export local symbol" || true
  test -x "$OUT/fuzz-$name" || { echo "fuzz: linking $name failed" >&2; exit 1; }
}

run_target() {
  local name="$1"
  local work="$SCRATCH/corpus/$name"
  mkdir -p "$work"
  cp -n Fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${SECONDS_EACH}s (corpus: $(ls "$work" | wc -l) inputs)"
  local dict=()
  [ -f "Fuzz/$name.dict" ] && dict=(-dict="Fuzz/$name.dict")
  # detect_leaks=0: the harnesses keep one decoder alive on purpose; leaks are not this target's question.
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$OUT/fuzz-$name" "${dict[@]}" \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$SCRATCH/artifacts/$name-" "$work" 2>&1 \
    | grep -E "^#[0-9]+ +(DONE|pulse)|INFO: seed|ERROR|SUMMARY|Test unit written|stat::number_of_executed_units|stat::peak_rss_mb|precondition|Fatal error" || true
  # libFuzzer exits non-zero on any finding; grep above hides the status, so check artifacts.
  if ls "$SCRATCH/artifacts/$name-"* >/dev/null 2>&1; then
    echo "fuzz: $name FOUND A FAILING INPUT: $(ls "$SCRATCH/artifacts/$name-"*)" >&2
    return 1
  fi
  echo "fuzz: $name: no failure in ${SECONDS_EACH}s"
}

status=0
for t in decoder pipeline; do
  if [ "$WHICH" = all ] || [ "$WHICH" = "$t" ]; then
    rm -f "$SCRATCH/artifacts/$t-"*
    build_target "$t"
    run_target "$t" || status=1
  fi
done
exit $status
