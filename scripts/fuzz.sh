#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for a fixed number of iterations: first over the inputs kept in
# fuzz/regressions/<target>/ (each one once found a bug, and must never again), then FUZZ_RUNS new ones
# (default 1 000 000). libFuzzer's coverage-guided search, built by cargo-fuzz; without a sanitizer (that would need
# a nightly compiler), so a run proves no panic and no failed check of the targets' own.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_fuzz_tools

runs="${FUZZ_RUNS:-1000000}"
cd "$REPO_ROOT/fuzz"
for target in $(cargo fuzz list); do
  log "fuzzing $target ($runs runs)"
  corpus="$(mktemp -d)"
  mkdir -p "regressions/$target"
  # The new corpus first: libFuzzer writes what it finds there, never into the kept inputs.
  status=0
  cargo fuzz run --sanitizer none "$target" "$corpus" "regressions/$target" -- \
    -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1 >"$corpus.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$corpus.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$corpus.log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/ (keep it in fuzz/regressions/$target/ once fixed)" >&2
    exit 1
  fi
  rm -rf "$corpus" "$corpus.log"
done
