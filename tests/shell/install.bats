#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031  # single quotes: the code runs in the shell under test; each test has its own PATH
# install.sh: the behaviours of research/dotfiles.md §7, each in a fresh HOME.

load helpers

setup_file() { build_dist; }
setup() { fresh_home; }

@test "piped install with flags installs the tools and one rc block" {
  run piped_install --yes
  [ "$status" -eq 0 ]
  for t in $(tool_names); do [ -x "$HOME/.local/bin/$t" ]; done
  [ "$(grep -cxF '# >>> bitrot >>>' "$HOME/.bashrc")" -eq 1 ]
}

@test "piping into sh says it needs bash and changes nothing" {
  run sh -s -- --yes <"$ROOT/install.sh"
  [ "$status" -eq 1 ]
  [[ "$output" == *"needs bash"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

@test "a second install changes nothing" {
  piped_install --yes
  before=$(home_snapshot)
  piped_install --yes
  [ "$before" = "$(home_snapshot)" ]
}

@test "user content is kept and backed up once" {
  printf 'alias ll=1\n' >"$HOME/.bashrc"
  piped_install --yes
  printf 'alias la=2\n' >>"$HOME/.bashrc"
  piped_install --yes
  [ "$(grep -c 'alias ll' "$HOME/.bashrc")" -eq 1 ]
  [ "$(grep -c 'alias la' "$HOME/.bashrc")" -eq 1 ]
  cmp <(printf 'alias ll=1\n') "$HOME/.bashrc.bitrot.bak"
}

@test "an rc file whose markers do not pair up is refused and left as it was" {
  piped_install --yes
  sed -i '/# <<< bitrot <<</d' "$HOME/.bashrc"
  printf 'alias keep=1\n' >>"$HOME/.bashrc"
  before=$(home_snapshot)
  run piped_install --yes
  [ "$status" -ne 0 ]
  [[ "$output" == *".bashrc"*"do not pair up"* ]]
  run piped_install --yes --uninstall
  [ "$status" -ne 0 ]
  [ "$before" = "$(home_snapshot)" ]
  grep -qx 'alias keep=1' "$HOME/.bashrc"
}

@test "a distribution .bashrc that sets PS1 after our block still gets the bitrot prompt" {
  printf '%s\n' "PS1='\\u@\\h:\\w\\$ '" >"$HOME/.bashrc"
  run piped_install --yes
  [[ "$output" == *".bashrc sets PS1: the bitrot prompt takes its place; BITROT_PROMPT=off"* ]]
  run env -i HOME="$HOME" TERM=xterm PATH=/usr/bin:/bin bash -i -c \
    'for h in "${PROMPT_COMMAND[@]}"; do eval "$h"; done; printf "%s" "$PS1"'
  [[ "$output" == *'${__bitrot_git}'* ]]
}

@test "--no-dotfiles then uninstall leaves no share/bitrot behind" {
  before=$(home_snapshot)
  piped_install --yes --no-dotfiles
  piped_install --yes --uninstall
  [ "$before" = "$(home_snapshot)" ]
}

@test "uninstall removes exactly what install added and restores rc files byte for byte" {
  printf 'x\ny' >"$HOME/.bashrc"     # no final newline on purpose
  printf 'set -g mouse off\n' >"$HOME/.tmux.conf"
  before=$(home_snapshot)
  piped_install --yes
  piped_install --yes --uninstall
  [ "$before" = "$(home_snapshot)" ]
}

@test "dry run prints the plan and writes nothing" {
  printf 'x\n' >"$HOME/.bashrc"
  before=$(home_snapshot)
  run piped_install --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"would write"* ]]
  [ "$before" = "$(home_snapshot)" ]
  BITROT_DRY_RUN=1 piped_install
  [ "$before" = "$(home_snapshot)" ]
}

@test "a symlinked rc file stays a symlink" {
  mkdir "$HOME/dot"
  printf 'export EDITOR=vi\n' >"$HOME/dot/bashrc"
  ln -s dot/bashrc "$HOME/.bashrc"
  piped_install --yes
  [ -L "$HOME/.bashrc" ]
  grep -qxF '# >>> bitrot >>>' "$HOME/dot/bashrc"
  piped_install --yes --uninstall
  [ -L "$HOME/.bashrc" ]
  cmp <(printf 'export EDITOR=vi\n') "$HOME/dot/bashrc"
}

@test "--no-modify-rc and its env twin leave rc files alone" {
  piped_install --yes --no-modify-rc
  [ ! -e "$HOME/.bashrc" ] && [ ! -e "$HOME/.profile" ] && [ ! -e "$HOME/.tmux.conf" ]
  [ -x "$HOME/.local/bin/ssh-ca" ]
  rm -rf "${HOME:?}"/.local
  BITROT_NO_MODIFY_RC=1 piped_install
  [ ! -e "$HOME/.bashrc" ]
}

@test "--no-dotfiles installs tools and PATH but no prompt or tmux config" {
  piped_install --yes --no-dotfiles
  [ ! -e "$HOME/.local/share/bitrot/prompt.bash" ]
  [ ! -e "$HOME/.tmux.conf" ]
  run grep -q prompt.bash "$HOME/.bashrc"
  [ "$status" -ne 0 ]
  grep -q '.local/bin' "$HOME/.bashrc"
}

@test "a custom prefix is honoured" {
  piped_install --yes --prefix "$HOME/opt"
  [ -x "$HOME/opt/bin/ssh-ca" ]
  [ ! -e "$HOME/.local/bin/ssh-ca" ]
  BITROT_PREFIX="$HOME/opt2" piped_install
  [ -x "$HOME/opt2/bin/ssh-ca" ]
}

@test "root under sudo into a user HOME is refused unless a system prefix is given" {
  mkdir "$BATS_TEST_TMPDIR/stub"
  printf '#!/bin/sh\n[ "$1" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n' >"$BATS_TEST_TMPDIR/stub/id"
  chmod +x "$BATS_TEST_TMPDIR/stub/id"
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" SUDO_USER=alice bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -ne 0 ]
  [[ "$output" == *"refusing to run under sudo"* ]]
  [ -z "$(ls -A "$HOME")" ]
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" SUDO_USER=alice bash -s -- --yes --no-modify-rc --prefix "$BATS_TEST_TMPDIR/sys" <"$ROOT/install.sh"
  [ "$status" -eq 0 ]
  [ -x "$BATS_TEST_TMPDIR/sys/bin/ssh-ca" ]
}

@test "new interactive and login shells find every tool" {
  piped_install --yes
  for t in $(tool_names); do
    run env -i HOME="$HOME" TERM=dumb PATH=/usr/bin:/bin bash -i -c "command -v $t"
    [[ "$output" == *"$HOME/.local/bin/$t"* ]]
    run env -i HOME="$HOME" PATH=/usr/bin:/bin bash -l -c "command -v $t"
    [[ "$output" == *"$HOME/.local/bin/$t"* ]]
  done
}

@test "man finds the installed man pages through PATH" {
  piped_install --yes
  for t in $(tool_names); do
    run env PATH="$HOME/.local/bin:$PATH" man -w "$t"
    [ "$status" -eq 0 ]
    [[ "$output" == "$HOME/.local/share/man/man1/$t.1"* ]]
  done
}

@test "git surgery --help and git svn-migrate --help open the installed man pages" {
  piped_install --yes
  run env PATH="$HOME/.local/bin:$PATH" MANPAGER=cat PAGER=cat MANWIDTH=80 git surgery --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"git-surgery"* ]]
  [[ "$output" == *"quarantine"* ]]
  run env PATH="$HOME/.local/bin:$PATH" MANPAGER=cat PAGER=cat MANWIDTH=80 git svn-migrate --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"git-svn-migrate"* ]]
}

@test "a checksum mismatch is refused and nothing is installed" {
  cp -r "$BATS_FILE_TMPDIR/dist" "$BATS_TEST_TMPDIR/bad"
  archive=$(ls "$BATS_TEST_TMPDIR"/bad/*.tar.gz)
  printf 'X' | dd of="$archive" bs=1 seek=100 conv=notrunc 2>/dev/null
  run env BITROT_DOWNLOAD_URL="file://$BATS_TEST_TMPDIR/bad" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -ne 0 ]
  [[ "$output" == *"checksum mismatch"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

@test "an unsupported platform gets one clear message" {
  mkdir "$BATS_TEST_TMPDIR/stub"
  printf '#!/bin/sh\ncase "$1" in -s) echo SunOS ;; -m) echo sparc ;; esac\n' >"$BATS_TEST_TMPDIR/stub/uname"
  chmod +x "$BATS_TEST_TMPDIR/stub/uname"
  run env PATH="$BATS_TEST_TMPDIR/stub:$PATH" bash -s -- --yes <"$ROOT/install.sh"
  [ "$status" -ne 0 ]
  [[ "$output" == *"unsupported platform: SunOS sparc"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

@test "from a checkout it builds with cargo" {
  run env BITROT_CARGO_PROFILE=dev bash "$ROOT/install.sh" --yes --no-modify-rc --prefix "$HOME/co"
  [ "$status" -eq 0 ]
  [ -x "$HOME/co/bin/ssh-ca" ]
  run "$HOME/co/bin/ssh-ca" --version
  [[ "$output" == "ssh-ca "* ]]
}

@test "a missing cargo is reported and changes nothing" {
  mkdir "$BATS_TEST_TMPDIR/nocargo"
  for c in bash sed grep dirname cat mktemp rm uname readlink id awk; do ln -s "$(command -v "$c")" "$BATS_TEST_TMPDIR/nocargo/$c"; done
  run env PATH="$BATS_TEST_TMPDIR/nocargo" bash "$ROOT/install.sh" --yes
  [ "$status" -ne 0 ]
  [[ "$output" == *"cargo not found"* ]]
  [ -z "$(ls -A "$HOME")" ]
}

# The subcommands `$1 $2 --help` lists (not help).
subcommands_of() {
  "$@" --help | awk '/^Commands:/ { c = 1; next } /^[^ ]/ { c = 0 } c && /^  [a-z]/ { print $1 }' | grep -vx help || true
}

@test "every subcommand has a man page with its options, EXIT STATUS and ENVIRONMENT; SEE ALSO names installed pages" {
  piped_install --yes
  man1="$HOME/.local/share/man/man1"
  export PATH="$HOME/.local/bin:$PATH" MANWIDTH=200 MANPAGER=cat PAGER=cat
  count=0
  for t in $(tool_names); do
    "$t" --help | grep -q BITROT_LOG
    # breadth first over subcommand paths: "", "repair", "quarantine list", ...
    paths=("")
    while [ ${#paths[@]} -gt 0 ]; do
      p=${paths[0]}
      paths=("${paths[@]:1}")
      page="$t${p:+-${p// /-}}"
      [ -f "$man1/$page.1" ] || { echo "no page $page.1" >&2; return 1; }
      text=$(man -l "$man1/$page.1" 2>/dev/null)
      for section in SYNOPSIS OPTIONS "EXIT STATUS" ENVIRONMENT; do
        grep -q "^$section" <<<"$text" || { echo "$page: no $section" >&2; return 1; }
      done
      grep -q BITROT_LOG <<<"$text"
      # every option in the synopsis shows its value (clap_mangen wrote "[-C ]")
      if grep -qE '\[-[A-Za-z] \]' <<<"$text"; then echo "$page: an option without its value in SYNOPSIS" >&2; return 1; fi
      # shellcheck disable=SC2086  # the path's words are separate arguments
      for flag in $("$t" $p --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
        grep -qe "$flag" <<<"$text" || { echo "$page: $flag not documented" >&2; return 1; }
      done
      # shellcheck disable=SC2013  # page names are words
      for ref in $(awk '/^SEE ALSO/ { s = 1; next } /^[A-Z]/ { s = 0 } s' <<<"$text" | grep -oE '[a-z0-9-]+\(1\)' | sed 's/(1)//'); do
        man -w "$ref" >/dev/null 2>&1 || { echo "$page: SEE ALSO $ref(1) is not installed" >&2; return 1; }
      done
      count=$((count + 1))
      # shellcheck disable=SC2086
      for s in $(subcommands_of "$t" $p); do paths+=("${p:+$p }$s"); done
    done
  done
  echo "$count pages checked" >&3
  [ "$count" -ge 26 ]
}

@test "usage errors exit 2 in ssh-ca and ssh-acme, 129 in the git tools (as git), naming the bad word" {
  piped_install --yes
  export PATH="$HOME/.local/bin:$PATH"
  for t in ssh-ca ssh-acme git-surgery git-svn-migrate; do
    want=2
    case "$t" in git-*) want=129 ;; esac
    run "$t" --no-such-flag
    [ "$status" -eq "$want" ] || { echo "$t --no-such-flag: $status" >&2; return 1; }
    [[ "$output" == *"--no-such-flag"* ]]
    run "$t" --help
    [[ "$output" == *"$want  bad usage"* || "$output" == *"$want  bad usage or bad input"* ]] || { echo "$t --help does not document $want" >&2; return 1; }
  done
  cd "$BATS_TEST_TMPDIR"
  run git surgery
  [ "$status" -eq 129 ]
  [[ "$output" == *"no command given"* ]]
  run git svn-migrate --no-such-flag
  [ "$status" -eq 129 ]
  run git surgery scan extra-word
  [ "$status" -eq 129 ]
  [[ "$output" == *"extra-word"* ]]
}
