#!/usr/bin/env bash
# Builds the browser's WASM as `cargo leptos build --release` does (the wasm-release profile, wasm-bindgen, then
# wasm-opt -Oz) and prints its size, raw and gzipped: the figure BENCHMARKS.md records.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
setup_build_tools

out="$(target_dir)/wasm-size"
rm -rf "$out" && mkdir -p "$out"
# `always-erase-components` in Cargo.toml: cargo-leptos builds release views type-erased.
RUSTFLAGS="--cfg erase_components" \
  cargo build --locked -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name spawnpoint \
  "$(target_dir)/wasm32-unknown-unknown/wasm-release/frontend.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int "$out/spawnpoint_bg.wasm" -o "$out/spawnpoint_bg.wasm"
raw=$(stat -c %s "$out/spawnpoint_bg.wasm")
gzipped=$(gzip -9 -c "$out/spawnpoint_bg.wasm" | wc -c)
printf 'spawnpoint_bg.wasm: %d KB raw, %d KB gzip -9\n' $((raw / 1024)) $((gzipped / 1024))
