# shellcheck shell=bash
# Set-up shared by scripts/run.sh and scripts/test.sh: installs what building and testing Spawnpoint needs on a
# fresh Debian machine with Rust (rustup), reaching only the package registries. Every step checks first, so a
# second run does nothing. Sourced, not executed.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_LEPTOS_VERSION="0.3.10" # 0.3.11 needs a newer rustc than this machine's.

log() { printf '\n==> %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The wasm-bindgen version the build will link against, read from Cargo.lock.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$REPO_ROOT/Cargo.lock"
}

# Where cargo puts binaries (honours CARGO_TARGET_DIR).
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$REPO_ROOT/Cargo.toml" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))'
}

# Everything `cargo leptos build` needs: the wasm target, cargo-leptos, wasm-bindgen-cli, wasm-opt from npm,
# xterm.js and the CodeMirror editor (from npm, put among the site's assets so Spawnpoint serves them itself).
setup_build_tools() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Node.js and npm"
    apt_install nodejs npm
  fi
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    log "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes a while, once)"
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
  fi
  local wbg
  wbg="$(wasm_bindgen_version)"
  if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wbg" ]; then
    log "installing wasm-bindgen-cli $wbg"
    # Not --locked: its lockfile pins a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$wbg"
  fi
  local xterm="$REPO_ROOT/node_modules/@xterm/xterm" modules="$REPO_ROOT/node_modules"
  if [ ! -x "$modules/.bin/wasm-opt" ] || [ ! -f "$xterm/lib/xterm.js" ] || [ ! -x "$modules/.bin/esbuild" ] \
    || [ ! -d "$modules/@codemirror/legacy-modes" ]; then
    log "installing build packages from npm (wasm-opt, xterm.js, CodeMirror, esbuild)"
    (cd "$REPO_ROOT" && npm ci --ignore-scripts --no-audit --no-fund)
  fi
  # Into the assets directory cargo-leptos copies to the site (public/vendor/ is not committed).
  mkdir -p "$REPO_ROOT/public/vendor/xterm" "$REPO_ROOT/public/vendor/codemirror"
  cp "$xterm/lib/xterm.js" "$xterm/css/xterm.css" "$xterm/LICENSE" "$REPO_ROOT/public/vendor/xterm/"
  # CodeMirror is ES modules: bundled into one script for the page.
  "$modules/.bin/esbuild" "$REPO_ROOT/app/js/code-editor.js" --bundle --minify --format=iife --target=es2020 \
    --log-level=warning --outfile="$REPO_ROOT/public/vendor/codemirror/code-editor.js"
  cp "$modules/@codemirror/view/LICENSE" "$REPO_ROOT/public/vendor/codemirror/"
  # Debian's own wasm-opt produces a release WASM that fails to hydrate; the npm one goes first on PATH.
  export PATH="$REPO_ROOT/node_modules/.bin:$PATH"
}

# cargo-fuzz, which builds the fuzz targets with libFuzzer (scripts/fuzz.sh).
CARGO_FUZZ_VERSION="0.13.1"
setup_fuzz_tools() {
  if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
}

# Debian's Chromium and Playwright (without a browser download of its own).
setup_browser_tests() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Chromium"
    apt_install chromium
  fi
  if [ ! -d "$REPO_ROOT/end2end/node_modules/@playwright/test" ]; then
    log "installing Playwright"
    (cd "$REPO_ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund)
  fi
}

# The real game servers and clients the tests play against (server/tests/games/: flying-squid, mineflayer,
# bedrock-protocol from npm; mcstatus from PyPI), moto's S3 server (PyPI) for the backups, and a JDK to build the
# test's server jar.
setup_game_peers() {
  local games="$REPO_ROOT/server/tests/games"
  if [ ! -d "$games/node_modules/flying-squid" ] || [ ! -d "$games/node_modules/bedrock-protocol" ]; then
    log "installing the test games from npm"
    # bedrock-protocol's native RakNet module would build from source; its prebuilt binary is used instead.
    (cd "$games" && npm ci --ignore-scripts --no-audit --no-fund)
  fi
  # The prebuilt RakNet binary is named for the kernel it was built on; this kernel's major version loads it too.
  local prebuilds="$games/node_modules/raknet-native/prebuilds" major
  major="$(uname -r | cut -d. -f1)"
  if [ -d "$prebuilds/linux-5-x64" ] && [ ! -d "$prebuilds/linux-$major-x64" ]; then
    cp -r "$prebuilds/linux-5-x64" "$prebuilds/linux-$major-x64"
  fi
  if ! python3 -c 'import mcstatus' 2>/dev/null; then
    log "installing mcstatus from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'mcstatus==14.2.0'
  fi
  if ! python3 -c 'import moto.server' 2>/dev/null; then
    log "installing moto's S3 server from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
  fi
  if ! python3 -c 'import paramiko' 2>/dev/null; then
    log "installing paramiko (an SFTP client) from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'paramiko==5.1.0'
  fi
  if ! command -v sftp >/dev/null || ! command -v ssh-keygen >/dev/null; then
    log "installing OpenSSH's client (sftp, ssh-keygen)"
    apt_install openssh-client
  fi
  if ! command -v javac >/dev/null || ! command -v jar >/dev/null; then
    log "installing a JDK (javac, jar)"
    apt_install openjdk-17-jdk-headless
  fi
}

# Ends the games the tests' panels left running. Games outlive their panel on purpose (a panel that crashes
# takes no game with it), and a test's in-process panel ends without stopping its games; their directories are
# the tests' temporary ones.
end_test_games() {
  pkill -KILL -f 'spawnpoint game-supervisor (/tmp/|target/e2e-data/)' 2>/dev/null || true
  local dir pid cwd
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    cwd="$(readlink "$dir/cwd" 2>/dev/null || true)"
    case "$cwd" in
      /tmp/.tmp*/servers/* | */target/e2e-data/servers/*) kill -KILL "$pid" 2>/dev/null || true ;;
    esac
  done
}

# kubectl, which renders the cluster manifests for their tests (`kubectl kustomize k8s/`): any kubectl already
# installed, else Debian's.
setup_manifest_tools() {
  if ! command -v kubectl >/dev/null; then
    log "installing kubectl (Debian's kubernetes-client)"
    apt_install kubernetes-client
  fi
}

# A PostgreSQL the database tests can create databases on, exported as SPAWNPOINT_TEST_POSTGRES. Uses the
# machine's server when it takes password-less connections; else starts the machine's stopped cluster; else
# runs a private throw-away server (installing PostgreSQL first if needed), stopped again when the shell exits.
setup_postgres() {
  local url="${SPAWNPOINT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
  pg_answers() { command -v psql >/dev/null && psql "$1" -qtAc 'SELECT 1' >/dev/null 2>&1; }

  if pg_answers "$url"; then
    export SPAWNPOINT_TEST_POSTGRES="$url"
    return
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    if [ -n "$version" ]; then
      log "starting the machine's PostgreSQL $version"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
      for _ in $(seq 20); do pg_answers "$url" && break; sleep 0.5; done
      if pg_answers "$url"; then
        export SPAWNPOINT_TEST_POSTGRES="$url"
        return
      fi
    fi
  fi

  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql
  fi
  local bin dir port=55432
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  dir="$(mktemp -d /tmp/spawnpoint-pg.XXXXXX)"
  chown postgres: "$dir"
  log "starting a private PostgreSQL on port $port"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  # shellcheck disable=SC2064 # expand now: the trap must stop this very server
  trap "runuser -u postgres -- '$bin/pg_ctl' -D '$dir/data' -m fast stop >/dev/null 2>&1; rm -rf '$dir'" EXIT
  export SPAWNPOINT_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
}
