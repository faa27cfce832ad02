#!/usr/bin/env bash
# Builds Spawnpoint (release: server + WASM site) and runs it in single-box mode: http://127.0.0.1:3000,
# SQLite in ./data. Installs the build tools first on a fresh machine. Extra arguments go to `spawnpoint`.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"

setup_build_tools
log "building Spawnpoint (release)"
cargo leptos build --release
# The single box runs the demo game as a local process; spawnpoint looks for it beside itself.
cargo build --release --locked -p demo-game
log "starting Spawnpoint"
exec "$(target_dir)/release/spawnpoint" "$@"
