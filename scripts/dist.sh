#!/usr/bin/env bash
# Builds the release archive for this machine's platform: binaries, man pages, bash
# completions and dotfiles, as bitrot-<os>-<arch>.tar.gz plus its .sha256, into OUT_DIR
# (default dist/), and beside them the install.sh to serve with the release, which carries the
# archive's checksum itself. BITROT_CARGO_PROFILE=dev builds a debug archive (the tests use it).
#
# The archive is for `tar -xzf … -C /usr/local` as much as for install.sh: directories are
# 0755 and files 0644 or 0755 whatever the umask, every entry is owned by 0:0, and entries are
# sorted by name.
# Usage: scripts/dist.sh [OUT_DIR]
set -euo pipefail

main() {
  local root out name sum
  root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
  out=${1:-$root/dist}
  case "$out" in /*) ;; *) out=$PWD/$out ;; esac
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  bash "$root/install.sh" --stage "$STAGE"
  # mktemp -d makes the top directory 0700: extracted into /usr/local it would lock others out.
  chmod -R u=rwX,go=rX "$STAGE"
  case "$(uname -m)" in x86_64 | amd64) name=bitrot-linux-x86_64 ;; aarch64 | arm64) name=bitrot-linux-aarch64 ;; *) echo "dist.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;; esac
  mkdir -p "$out"
  tar --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/$name.tar.gz.tmp" -C "$STAGE" .
  mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
  (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  sum=$(cut -d' ' -f1 <"$out/$name.tar.gz.sha256")
  grep -qx "RELEASE_SHA256=''" "$root/install.sh" || { echo "dist.sh: install.sh has no RELEASE_SHA256='' line to fill in" >&2; exit 1; }
  sed "s/^RELEASE_SHA256=''\$/RELEASE_SHA256='$name.tar.gz=$sum'/" "$root/install.sh" >"$out/install.sh.tmp"
  mv "$out/install.sh.tmp" "$out/install.sh"
  echo "$out/$name.tar.gz"
}

main "$@"
