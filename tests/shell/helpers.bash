# shellcheck shell=bash
# Shared set-up for the shell tests: a release archive built once per file, a fresh HOME per test.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

build_dist() {
  BITROT_CARGO_PROFILE=dev "$ROOT/scripts/dist.sh" "$BATS_FILE_TMPDIR/dist" >/dev/null
}

# cargo and rustup keep their state under the real HOME; keep finding it when HOME changes.
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}

fresh_home() {
  export HOME="$BATS_TEST_TMPDIR/home"
  mkdir -p "$HOME"
  export BITROT_DOWNLOAD_URL="file://$BATS_FILE_TMPDIR/dist"
  unset BITROT_PREFIX BITROT_NO_MODIFY_RC BITROT_MODIFY_RC BITROT_NO_DOTFILES BITROT_DRY_RUN BITROT_UNINSTALL BITROT_ALLOW_HTTP
}

# Every file under HOME with its checksum, for before/after comparisons.
home_snapshot() {
  (cd "$HOME" && find . \( -type f -o -type l \) -print0 | sort -z | xargs -0 -r sha256sum 2>/dev/null; find . -type d | sort)
}

# Runs the installer the way users pipe it: the script on stdin, flags after -s --.
piped_install() {
  bash -s -- "$@" <"$ROOT/install.sh"
}

# The tool names the package builds.
tool_names() {
  sed -n '/^\[\[bin\]\]/,/^$/s/^name = "\(.*\)"/\1/p' "$ROOT/Cargo.toml"
}

# Every file under directory $1 with its checksum and mode, and every directory (nothing: "absent").
tree_snapshot() {
  [ -e "$1" ] || { echo absent; return 0; }
  (cd "$1" && find . \( -type f -o -type l \) -print0 | sort -z | xargs -0 -r sha256sum 2>/dev/null
    find . -printf '%M %p\n' | sort)
}

# Serves directory $1 over http on 127.0.0.1 (mode $2: "", cut or stall); sets HTTP_URL and
# HTTP_LOG (one line per request). stop_http (from teardown) stops it.
start_http() {
  local portfile="$BATS_TEST_TMPDIR/http.port" i
  HTTP_LOG="$BATS_TEST_TMPDIR/http.log"
  : >"$HTTP_LOG"
  python3 "$ROOT/tests/shell/http_server.py" "$1" "$portfile" "$HTTP_LOG" "${2:-}" 3>&- &
  HTTP_PID=$!
  for ((i = 0; i < 100; i++)); do
    [ -s "$portfile" ] && break
    sleep 0.1
  done
  [ -s "$portfile" ] || { echo "http server did not start" >&2; return 1; }
  HTTP_URL="http://127.0.0.1:$(cat "$portfile")"
  export HTTP_URL
}

stop_http() {
  [ -n "${HTTP_PID:-}" ] || return 0
  kill "$HTTP_PID" 2>/dev/null || true
  wait "$HTTP_PID" 2>/dev/null || true
  HTTP_PID=
}
