#!/usr/bin/env bats
# shellcheck disable=SC2016  # single quotes on purpose: the code runs in the shell under test
# Completion as users meet it: the installed tools, real bash-completion (its loader finds our
# files under ~/.local/share/bash-completion), git's own completion for `git surgery` and
# `git svn-migrate`, in an interactive bash inside tmux. Each case types a line, presses Tab
# and reads what the screen offers.

load helpers

setup_file() { build_dist; }

setup() {
  fresh_home
  [ -r /usr/share/bash-completion/bash_completion ]
  piped_install --yes --no-dotfiles
  WORK_DIR="$BATS_TEST_TMPDIR/work"
  git init -q "$WORK_DIR"
  git -C "$WORK_DIR" remote add origin "$BATS_TEST_TMPDIR/origin.git"
  git -C "$WORK_DIR" remote add mirror "$BATS_TEST_TMPDIR/mirror.git"
  ssh-keygen -q -t ed25519 -N '' -f "$WORK_DIR/id_test" >/dev/null
  "$HOME/.local/bin/ssh-ca" --dir "$WORK_DIR/ca" init >/dev/null 2>&1
  printf '%s\n' 'set completion-query-items 10000' 'set page-completions off' \
    'set show-all-if-ambiguous on' 'set bell-style none' >"$BATS_TEST_TMPDIR/inputrc"
  SOCK="bitrot-complete-$$-$BATS_TEST_NUMBER"
  tmux -L "$SOCK" -f /dev/null new-session -d -x 200 -y 50 -c "$WORK_DIR" \
    "env -i HOME='$HOME' TERM=xterm-256color PATH='$HOME/.local/bin:/usr/bin:/bin' INPUTRC='$BATS_TEST_TMPDIR/inputrc' bash --norc --noprofile -i"
  tmux -L "$SOCK" send-keys -t 0 ". /usr/share/bash-completion/bash_completion; PS1='> '" Enter
  sleep 0.5
}

teardown() { tmux -L "$SOCK" kill-server 2>/dev/null || true; }

# Types $1 on a fresh line, presses Tab, waits for the screen to show $2, prints the screen.
offers() {
  local line=$1 want=$2 screen i
  tmux -L "$SOCK" send-keys -t 0 C-u C-l
  sleep 0.2
  tmux -L "$SOCK" send-keys -t 0 -l "$line"
  tmux -L "$SOCK" send-keys -t 0 Tab
  for ((i = 0; i < 30; i++)); do
    sleep 0.1
    screen=$(tmux -L "$SOCK" capture-pane -p -t 0)
    [[ "$screen" == *"$want"* ]] && break
  done
  printf '%s\n' "$screen"
}

# Asserts that Tab after $1 offers every word of $2 and none of $3.
assert_offers() {
  local screen w
  screen=$(offers "$1" "${2%% *}")
  for w in $2; do
    grep -qw -- "$w" <<<"$screen" || { printf 'after %q, no %s in:\n%s\n' "$1" "$w" "$screen" >&2; return 1; }
  done
  for w in ${3:-}; do
    if grep -qw -- "$w" <<<"$screen"; then printf 'after %q, %s offered:\n%s\n' "$1" "$w" "$screen" >&2; return 1; fi
  done
}

@test "ssh-ca completes subcommands, each subcommand's flags, profiles and key files" {
  assert_offers "ssh-ca " "init sign list inspect verify revoke krl export audit"
  assert_offers "ssh-ca --" "--dir --json --help --version" "--generate"
  assert_offers "ssh-ca sign --" "--principals --profile --validity --key-id --serial --host" "--generate"
  assert_offers "ssh-ca --dir ca sign --profile " "user host"
  assert_offers "ssh-ca sign -n alice id_" "id_test id_test.pub"
  assert_offers "ssh-ca revoke --" "--serial --key-id --key --reason"
  assert_offers "ssh-ca init --key-type " "ed25519 ecdsa rsa"
  assert_offers "ssh-ca audit " "verify"
}

@test "git-surgery and git surgery complete subcommands, flags and remote names" {
  assert_offers "git-surgery " "scan repair quarantine"
  assert_offers "git-surgery repair --" "--remote --reference --dry-run --force --reset-broken --json" "--generate"
  assert_offers "git-surgery repair --remote " "origin mirror"
  assert_offers "git-surgery quarantine " "list restore purge"
  assert_offers "git surgery " "scan repair quarantine"
  assert_offers "git surgery repair --" "--remote --reference --dry-run --force"
  assert_offers "git surgery repair --remote " "origin mirror"
}

@test "git-svn-migrate and git svn-migrate complete subcommands, flags and values" {
  assert_offers "git-svn-migrate " "authors sync"
  assert_offers "git-svn-migrate --" "--authors --rules --verify --trunk" "--generate"
  assert_offers "git-svn-migrate --verify=" "tips all"
  assert_offers "git svn-migrate " "authors sync"
  assert_offers "git svn-migrate sync --" "--source --verify"
}

@test "ssh-acme completes subcommands past the first word, hyphenated ones included" {
  assert_offers "ssh-acme " "serve account register key-change deactivate orders issue renew agent revoke"
  assert_offers "ssh-acme issue " "user host"
  assert_offers "ssh-acme issue user --" "--principal --key --out --validity --server"
  assert_offers "ssh-acme key-change --" "--new-key --key --server"
  assert_offers "ssh-acme account " "allow eab-create"
  assert_offers "ssh-acme serve --" "--dir --config --base-url" "--generate"
}

@test "the installed completion scripts are ShellCheck-clean and offer no hidden flag" {
  for t in $(tool_names); do
    f="$HOME/.local/share/bash-completion/completions/$t"
    shellcheck -s bash "$f"
    run grep -c -- '--generate' "$f"
    # only the header line names it (how the script was made)
    [ "$output" -eq 1 ]
  done
}
