#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for a while, starting from the committed seed
# corpus (fuzz/corpus/<parser>/). New inputs go to BUILD/fuzz-corpus/<parser>/, crashes to
# BUILD/fuzz-artifacts/. Exit status 1 if any fuzzer found a crash, leak, timeout or OOM.
#
#   scripts/run-fuzzers.sh [BUILD_DIR=build-fuzz] [SECONDS_EACH=30] [FUZZER...]
#   make fuzz FUZZ_SECONDS=60        # configures build-fuzz with clang, builds, runs this
#
# Reproduce a finding: BUILD/fuzz_<parser> BUILD/fuzz-artifacts/<parser>-crash-<sha1>
set -uo pipefail

build=${1:-build-fuzz}
seconds=${2:-30}
shift $(( $# > 2 ? 2 : $# ))
root=$(cd "$(dirname "$0")/.." && pwd)

fuzzers=("$@")
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  for f in "$build"/fuzz_*; do [[ -x "$f" && -f "$f" ]] && fuzzers+=("$(basename "$f")"); done
fi
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "run-fuzzers: no fuzz_* executables in $build (build them with: make fuzz)" >&2
  exit 2
fi

mkdir -p "$build/fuzz-artifacts"
failed=()
for name in "${fuzzers[@]}"; do
  parser=${name#fuzz_}
  seeds="$root/fuzz/corpus/$parser"
  work="$build/fuzz-corpus/$parser"
  mkdir -p "$work"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len=4096
        -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$parser-")
  dict="$root/fuzz/$parser.dict"
  [[ -f "$dict" ]] && args+=(-dict="$dict")
  log="$build/fuzz-$parser.log"
  echo "run-fuzzers: $name for ${seconds}s (log $log)"
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
       "$build/$name" "${args[@]}" "$work" "$seeds" >"$log" 2>&1; then
    grep -E "stat::number_of_executed_units|cov:" "$log" | tail -2 | sed 's/^/  /'
  else
    echo "run-fuzzers: $name FAILED; the end of $log:" >&2
    tail -40 "$log" >&2
    failed+=("$name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run-fuzzers: findings in ${failed[*]} (inputs in $build/fuzz-artifacts/)" >&2
  exit 1
fi
echo "run-fuzzers: ${#fuzzers[@]} fuzzers ran ${seconds}s each without findings"
