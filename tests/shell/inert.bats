#!/usr/bin/env bats
# shellcheck disable=SC2016  # single quotes on purpose: the code runs in the shell under test
# install.sh cut short anywhere runs nothing: every prefix of the script (each line boundary and
# 200 fixed-seed byte offsets, plus every byte of the tail) is piped into bash whose PATH holds only recording shims, and
# command_not_found_handle records any other name. A full run is the control: it must record.

load helpers

setup() {
  fresh_home
  SHIMS="$BATS_TEST_TMPDIR/shims"
  LOG="$BATS_TEST_TMPDIR/ran.log"
  export LOG
  mkdir -p "$SHIMS"
  printf '#!/bin/bash\nprintf "%%s\\n" "${0##*/}" >>"$LOG"\n' >"$SHIMS/.shim"
  chmod +x "$SHIMS/.shim"
  local dir name
  for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin "$CARGO_HOME/bin"; do
    [ -d "$dir" ] || continue
    for name in "$dir"/*; do
      name=${name##*/}
      [ -e "$SHIMS/$name" ] || ln -s .shim "$SHIMS/$name"
    done
  done
  : >"$LOG"
}

# Pipes the first $1 bytes of install.sh into a bash that can only reach the shims.
run_prefix() {
  head -c "$1" "$ROOT/install.sh" >"$BATS_TEST_TMPDIR/prefix"
  env -i HOME="$HOME" LOG="$LOG" PATH="$SHIMS" \
    /bin/bash -c 'command_not_found_handle() { printf "%s\n" "$1" >>"$LOG"; return 127; }
                  /bin/bash -s -- --yes <"$0"' "$BATS_TEST_TMPDIR/prefix" >/dev/null 2>&1 || true
}

# Offsets below size-1: a cut that keeps the closing brace (only the final newline lost) is the
# whole script, which rightly runs.
cut_offsets() {
  local size=$(($1 - 1)) i
  # every line boundary: the byte count up to and including each newline
  LC_ALL=C awk '{ n += length($0) + 1; print n }' "$ROOT/install.sh" |
    LC_ALL=C awk -v size="$size" '$1 < size'
  # every byte of the tail, where the call to main sits
  for ((i = size - 64; i < size; i++)); do printf '%s\n' "$i"; done
  RANDOM=1515
  for ((i = 0; i < 200; i++)); do
    printf '%s\n' $(((RANDOM * 32768 + RANDOM) % size))
  done
}

@test "the shims record a command when the whole script runs (control)" {
  run_prefix "$(wc -c <"$ROOT/install.sh")"
  [ -s "$LOG" ]
}

@test "install.sh cut at any line or at 200 random bytes runs no command" {
  size=$(wc -c <"$ROOT/install.sh")
  count=0
  while read -r n; do
    run_prefix "$n"
    if [ -s "$LOG" ]; then
      echo "cut at byte $n ran: $(sort -u "$LOG" | tr '\n' ' ')" >&2
      return 1
    fi
    count=$((count + 1))
  done < <(cut_offsets "$size")
  [ "$count" -ge 400 ]
  [ -z "$(ls -A "$HOME")" ]
}
