#!/usr/bin/env bash
# Runs every check and test: formatting, clippy for the server and the browser builds, the WASM dependency
# boundary, unit and integration tests on SQLite and PostgreSQL, the fuzz targets, and the browser tests in
# Chromium.
# Installs what it needs first on a fresh machine.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"

setup_build_tools
setup_browser_tests
setup_postgres
setup_manifest_tools
setup_game_peers

# cargo-leptos builds debug binaries with this flag (and adds it itself); giving the other cargo steps the same
# flag lets them all share one build cache.
export RUSTFLAGS="--cfg erase_components"
results="$(mktemp -d)"

log "formatting"
cargo fmt --all -- --check

log "clippy: server build (ssr)"
cargo clippy --locked -p catalog -p app -p server -p demo-game -p k8s-sim -p test-support -p stripe-signature --features app/ssr --all-targets -- -D warnings
log "clippy: browser build (hydrate)"
cargo clippy --locked -p catalog -p app -p frontend --features app/hydrate --target wasm32-unknown-unknown -- -D warnings

log "server-only crates stay out of the WASM"
# `cargo tree -i` prints the path by which a crate is pulled in, and nothing when it is not.
for crate in sqlx tokio axum leptos_axum secrecy argon2 jsonwebtoken governor; do
  path="$(cargo tree --locked -p frontend -e normal --target wasm32-unknown-unknown -i "$crate" 2>/dev/null || true)"
  if [ -n "$path" ]; then
    printf 'error: %s reaches the browser build:\n%s\n' "$crate" "$path" >&2
    exit 1
  fi
done

log "unit and integration tests (SQLite and PostgreSQL)"
end_test_games
cargo test --locked --workspace --exclude frontend 2>&1 | tee "$results/cargo.log"
end_test_games

log "fuzzing: the parsers of what outsiders send"
env -u RUSTFLAGS bash "$REPO_ROOT/scripts/fuzz.sh"

log "browser tests (Chromium)"
env -u RUSTFLAGS cargo leptos build
rm -rf target/e2e-data
(cd end2end && SPAWNPOINT_BIN="$(target_dir)/debug/spawnpoint" PLAYWRIGHT_JSON_OUTPUT_NAME="$results/e2e.json" \
  npx playwright test --reporter=list,json) || e2e_status=$?
end_test_games
[ "${e2e_status:-0}" -eq 0 ] || exit "$e2e_status"

# One closing line over both runners.
cargo_passed=$(awk '/^test result:/ { sum += $4 } END { print sum + 0 }' "$results/cargo.log")
cargo_failed=$(awk '/^test result:/ { sum += $6 } END { print sum + 0 }' "$results/cargo.log")
read -r e2e_passed e2e_failed < <(node -e '
  const s = require(process.argv[1]).stats;
  console.log(s.expected, s.unexpected + s.flaky);' "$results/e2e.json")
echo
echo "$((cargo_passed + e2e_passed)) passed, $((cargo_failed + e2e_failed)) failed"
