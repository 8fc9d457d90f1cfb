#!/usr/bin/env bash
# Builds the release archive for this machine's platform: binaries, man pages, bash
# completions and dotfiles, as bitrot-<os>-<arch>.tar.gz plus its .sha256, into OUT_DIR
# (default dist/). BITROT_CARGO_PROFILE=dev builds a debug archive (the tests use it).
# Usage: scripts/dist.sh [OUT_DIR]
set -euo pipefail

main() {
  local root out name
  root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
  out=${1:-$root/dist}
  case "$out" in /*) ;; *) out=$PWD/$out ;; esac
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  bash "$root/install.sh" --stage "$STAGE"
  case "$(uname -m)" in x86_64 | amd64) name=bitrot-linux-x86_64 ;; aarch64 | arm64) name=bitrot-linux-aarch64 ;; *) echo "dist.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;; esac
  mkdir -p "$out"
  tar -czf "$out/$name.tar.gz.tmp" -C "$STAGE" .
  mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
  (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  echo "$out/$name.tar.gz"
}

main "$@"
