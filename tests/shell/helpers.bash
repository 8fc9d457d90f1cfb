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
  unset BITROT_PREFIX BITROT_NO_MODIFY_RC BITROT_NO_DOTFILES BITROT_DRY_RUN BITROT_UNINSTALL
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
