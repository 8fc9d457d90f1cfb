#!/usr/bin/env bats
# shellcheck disable=SC2016  # single quotes on purpose: the code runs in the shell under test
# install.sh as one transaction, and the downloads and archives it accepts. Each failure is a
# real one (a read-only or busy mount in a private mount namespace, a small tmpfs, a loopback
# HTTP server that cuts or stalls the download, a shimmed getconf); after each, HOME and the
# prefix must be byte for byte what they were.

load helpers

setup_file() { build_dist; }
setup() {
  fresh_home
  ARCHIVE=$(ls "$BATS_FILE_TMPDIR"/dist/*.tar.gz)
  ARCHIVE_NAME=${ARCHIVE##*/}
}
teardown() { stop_http; }

# Runs the installer (stdin: install.sh, flags $3...) in a private mount namespace after the
# shell code $1 has set up its mounts there; $2 is passed to that code as $1. What directory $2
# holds afterwards, seen from inside the namespace, is left in $BATS_TEST_TMPDIR/after.
in_mount_ns() {
  local setup=$1 arg=$2
  shift 2
  AFTER="$BATS_TEST_TMPDIR/after" unshare -m bash -c "$setup"' && { bash -s -- "${@:2}"; rc=$?; ls -A "$1" >"$AFTER"; exit $rc; }' \
    _ "$arg" "$@" <"$ROOT/install.sh"
}

no_work_dirs() {
  [ -z "$(find "$1" -name '.bitrot-install.*' 2>/dev/null)" ]
}

@test "a read-only directory in the prefix is refused before anything is written" {
  printf 'alias ll=1\n' >"$HOME/.bashrc"
  mkdir -p "$HOME/.local/share/man"
  before=$(home_snapshot)
  run in_mount_ns 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1"' "$HOME/.local/share/man" --yes
  [ "$status" -eq 1 ]
  [[ "$output" == *"cannot write in $HOME/.local/share/man"* ]]
  [ "$before" = "$(home_snapshot)" ]
}

@test "a file that cannot be replaced part-way undoes the files already replaced" {
  piped_install --yes
  # An older version of two files: the next install replaces bin/ssh-ca, then fails on the
  # man page, which is busy (a mount point cannot be renamed over).
  printf 'older\n' >>"$HOME/.local/bin/ssh-ca"
  printf 'busy\n' >"$BATS_TEST_TMPDIR/busy"
  before=$(tree_snapshot "$HOME")
  run in_mount_ns 'mount --bind "$1" "$HOME/.local/share/man/man1/ssh-ca.1"' "$BATS_TEST_TMPDIR/busy" --yes
  [ "$status" -eq 1 ]
  [[ "$output" == *"moving aside $HOME/.local/share/man/man1/ssh-ca.1 failed: "*"busy"* ]]
  [[ "$output" == *"undone"* ]]
  [ "$before" = "$(tree_snapshot "$HOME")" ]
  tail -c 6 "$HOME/.local/bin/ssh-ca" | grep -qx older
  no_work_dirs "$HOME"
}

@test "an rc file that cannot be written undoes the rc files already edited and every file" {
  printf 'alias ll=1\n' >"$HOME/.bashrc"
  printf 'set -g mouse on\n' >"$HOME/.tmux.conf"
  printf 'set -g mouse on\n' >"$BATS_TEST_TMPDIR/tmux.conf"
  before=$(tree_snapshot "$HOME")
  run in_mount_ns 'mount --bind "$1" "$HOME/.tmux.conf"' "$BATS_TEST_TMPDIR/tmux.conf" --yes
  [ "$status" -eq 1 ]
  [[ "$output" == *"updated $HOME/.bashrc"* ]]
  [[ "$output" == *"writing $HOME/.tmux.conf failed"* ]]
  [ "$before" = "$(tree_snapshot "$HOME")" ]
  [ ! -e "$HOME/.local" ]
}

@test "a full disk during the download is undone, with the step and path named" {
  prefix="$BATS_TEST_TMPDIR/small"
  mkdir "$prefix"
  before=$(home_snapshot)
  run in_mount_ns 'mount -t tmpfs -o size=1m tmpfs "$1"' "$prefix" --yes --prefix "$prefix"
  [ "$status" -eq 1 ]
  [[ "$output" == *"downloading file://"*"$ARCHIVE_NAME failed: "*"No space left on device"* ]]
  [ ! -s "$BATS_TEST_TMPDIR/after" ]
  [ "$before" = "$(home_snapshot)" ]
}

@test "an archive that would not fit unpacked is refused before unpacking" {
  prefix="$BATS_TEST_TMPDIR/small"
  mkdir "$prefix"
  # room for the download and a little more, not for the unpacked tree
  size=$(($(stat -c %s "$ARCHIVE") + 2097152))
  before=$(home_snapshot)
  run in_mount_ns 'mount -t tmpfs -o size='"$size"' tmpfs "$1"' "$prefix" --yes --prefix "$prefix"
  [ "$status" -eq 1 ]
  [[ "$output" == *"not enough space in $prefix: the release needs "*" MiB unpacked"* ]]
  [ ! -s "$BATS_TEST_TMPDIR/after" ]
  [ "$before" = "$(home_snapshot)" ]
}

@test "a checksum mismatch leaves no temporary file anywhere" {
  cp -r "$BATS_FILE_TMPDIR/dist" "$BATS_TEST_TMPDIR/bad"
  printf 'X' | dd of="$BATS_TEST_TMPDIR/bad/$ARCHIVE_NAME" bs=1 seek=100 conv=notrunc 2>/dev/null
  mkdir "$BATS_TEST_TMPDIR/tmp"
  run env TMPDIR="$BATS_TEST_TMPDIR/tmp" BITROT_DOWNLOAD_URL="file://$BATS_TEST_TMPDIR/bad" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"checksum mismatch for $ARCHIVE_NAME"* ]]
  [ -z "$(ls -A "$HOME")" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/tmp")" ]
}

@test "an interrupted download is refused and undone" {
  start_http "$BATS_FILE_TMPDIR/dist" cut
  run env BITROT_DOWNLOAD_URL="$HTTP_URL" bash -s -- --yes --allow-http <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"downloading $HTTP_URL/$ARCHIVE_NAME failed: curl: (18)"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

@test "plain http is refused unless --allow-http, before any request is made" {
  start_http "$BATS_FILE_TMPDIR/dist"
  run env BITROT_DOWNLOAD_URL="$HTTP_URL" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"refusing $HTTP_URL: plain http"*"--allow-http"* ]]
  [ ! -s "$HTTP_LOG" ]
  [ -z "$(ls -A "$HOME")" ]
  run env BITROT_DOWNLOAD_URL="ftp://127.0.0.1/x" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"must start with https:// or file://"* ]]
  run env BITROT_DOWNLOAD_URL="$HTTP_URL" BITROT_ALLOW_HTTP=1 bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  [ -x "$HOME/.local/bin/ssh-ca" ]
}

@test "without curl the download is made with wget" {
  start_http "$BATS_FILE_TMPDIR/dist"
  mkdir "$BATS_TEST_TMPDIR/nocurl"
  for f in /usr/local/bin/* /usr/bin/* /bin/*; do
    name=${f##*/}
    [ "$name" = curl ] || [ -e "$BATS_TEST_TMPDIR/nocurl/$name" ] || ln -s "$f" "$BATS_TEST_TMPDIR/nocurl/$name"
  done
  run env PATH="$BATS_TEST_TMPDIR/nocurl" BITROT_DOWNLOAD_URL="$HTTP_URL" bash -s -- --yes --allow-http <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  grep -qx "/$ARCHIVE_NAME" "$HTTP_LOG"
  run "$HOME/.local/bin/ssh-ca" --version
  [[ "$output" == "ssh-ca "* ]]
}

@test "a dry run downloads nothing and builds nothing" {
  start_http "$BATS_FILE_TMPDIR/dist"
  printf 'x\n' >"$HOME/.bashrc"
  before=$(home_snapshot)
  run env BITROT_DOWNLOAD_URL="$HTTP_URL" bash -s -- --dry-run --allow-http <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  [[ "$output" == *"would download $HTTP_URL/$ARCHIVE_NAME"* ]]
  [[ "$output" == *"would write $HOME/.bashrc"* ]]
  [ ! -s "$HTTP_LOG" ]
  [ "$before" = "$(home_snapshot)" ]
  run env BITROT_CARGO_PROFILE=no-such-profile bash "$ROOT/install.sh" --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"would build $ROOT"* ]]
  [[ "$output" != *"building"* ]]
}

@test "the installer served with a release refuses an archive swapped together with its .sha256" {
  served="$BATS_FILE_TMPDIR/dist/install.sh"
  grep -q "^RELEASE_SHA256='$ARCHIVE_NAME=[0-9a-f]\{64\}'\$" "$served"
  # A different archive with a matching .sha256: what a compromised mirror would serve.
  mkdir -p "$BATS_TEST_TMPDIR/evil/tree" "$BATS_TEST_TMPDIR/mirror"
  tar -xzf "$ARCHIVE" -C "$BATS_TEST_TMPDIR/evil/tree"
  printf '#!/bin/sh\necho evil\n' >>"$BATS_TEST_TMPDIR/evil/tree/share/bitrot/prompt.bash"
  tar -czf "$BATS_TEST_TMPDIR/mirror/$ARCHIVE_NAME" -C "$BATS_TEST_TMPDIR/evil/tree" .
  (cd "$BATS_TEST_TMPDIR/mirror" && sha256sum "$ARCHIVE_NAME" >"$ARCHIVE_NAME.sha256")
  run env BITROT_DOWNLOAD_URL="file://$BATS_TEST_TMPDIR/mirror" bash -s -- --yes <"$served"
  [ "$status" -eq 1 ]
  [[ "$output" == *"does not match the checksum this install.sh carries"* ]]
  [ -z "$(ls -A "$HOME")" ]
  # the same installer takes the genuine release
  run bash -s -- --yes <"$served"
  [ "$status" -eq 0 ]
  [ -x "$HOME/.local/bin/ssh-ca" ]
}

@test "a glibc older than the binaries need is named, with what to do" {
  mkdir "$BATS_TEST_TMPDIR/stub"
  printf '#!/bin/sh\n[ "$1" = GNU_LIBC_VERSION ] && { echo "glibc 2.17"; exit 0; }\nexit 1\n' >"$BATS_TEST_TMPDIR/stub/getconf"
  chmod +x "$BATS_TEST_TMPDIR/stub/getconf"
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"need glibc 2."*" or newer and this system has glibc 2.17: upgrade the system, or build from source"* ]]
  [ -z "$(ls -A "$HOME")" ]
  printf '#!/bin/sh\nexit 1\n' >"$BATS_TEST_TMPDIR/stub/getconf"
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"this system has none (musl?)"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

@test "the archive unpacks into /usr/local as root would want it: 0755 directories, 0:0 owners" {
  run tar -tvzf "$ARCHIVE"
  [ "$status" -eq 0 ]
  while read -r mode owner _; do
    [ "$owner" = 0/0 ] || { echo "owner $owner" >&2; return 1; }
    case "$mode" in drwxr-xr-x | -rw-r--r-- | -rwxr-xr-x) ;; *) echo "mode $mode" >&2; return 1 ;; esac
  done <<<"$output"
  mkdir "$BATS_TEST_TMPDIR/usr-local"
  chmod 755 "$BATS_TEST_TMPDIR/usr-local"
  tar -xzf "$ARCHIVE" -C "$BATS_TEST_TMPDIR/usr-local"
  [ "$(stat -c %a "$BATS_TEST_TMPDIR/usr-local")" = 755 ]
}

@test "root into a system prefix leaves rc files alone unless --modify-rc" {
  mkdir "$BATS_TEST_TMPDIR/stub"
  printf '#!/bin/sh\n[ "$1" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n' >"$BATS_TEST_TMPDIR/stub/id"
  chmod +x "$BATS_TEST_TMPDIR/stub/id"
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" SUDO_USER=alice bash -s -- --prefix "$BATS_TEST_TMPDIR/sys" <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  [[ "$output" == *"leaving $HOME's rc files alone"*"--modify-rc"* ]]
  [ -x "$BATS_TEST_TMPDIR/sys/bin/ssh-ca" ]
  [ -z "$(ls -A "$HOME")" ]
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" SUDO_USER=alice bash -s -- --modify-rc --prefix "$BATS_TEST_TMPDIR/sys" <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  grep -qF "$BATS_TEST_TMPDIR/sys/bin" "$HOME/.bashrc"
}

@test "an install killed outright is undone by the next run" {
  piped_install --yes
  printf 'older\n' >>"$HOME/.local/bin/ssh-ca"
  printf 'older\n' >>"$HOME/.local/share/man/man1/ssh-ca.1"
  before=$(tree_snapshot "$HOME")
  # An mv that hangs on its third call: after bin/ssh-ca was replaced (two calls), while the
  # man page is being moved aside.
  mkdir "$BATS_TEST_TMPDIR/shim"
  real_mv=$(command -v mv)
  printf '#!/bin/bash\nn=$(($(cat "%s/count" 2>/dev/null || echo 0) + 1)); echo $n >"%s/count"\nif [ $n = 3 ]; then echo $$ >"%s/hung"; exec sleep 600; fi\nexec %s "$@"\n' \
    "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR" "$real_mv" >"$BATS_TEST_TMPDIR/shim/mv"
  chmod +x "$BATS_TEST_TMPDIR/shim/mv"
  PATH="$BATS_TEST_TMPDIR/shim:$PATH" bash -s -- --yes <"$ROOT/install.sh" 3>&- &
  pid=$!
  for ((i = 0; i < 600; i++)); do [ -s "$BATS_TEST_TMPDIR/hung" ] && break; sleep 0.1; done
  [ -s "$BATS_TEST_TMPDIR/hung" ]
  kill -9 "$pid"
  kill "$(cat "$BATS_TEST_TMPDIR/hung")"
  wait "$pid" || true
  [ -n "$(find "$HOME/.local" -maxdepth 1 -name ".bitrot-install.*")" ]
  [ "$before" != "$(tree_snapshot "$HOME")" ]
  # The next run undoes the killed one first (then fails on its own, and undoes itself).
  run env BITROT_DOWNLOAD_URL="file://$BATS_TEST_TMPDIR/nothing-here" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"undoing an interrupted install"* ]]
  [ "$before" = "$(tree_snapshot "$HOME")" ]
}
