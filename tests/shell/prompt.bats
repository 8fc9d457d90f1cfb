#!/usr/bin/env bats
# shellcheck disable=SC2016  # single quotes on purpose: the code runs in the shell under test
# The prompt and tmux dotfiles: colour, escaping, hook etiquette, git state, tmux.

load helpers

DOT="$ROOT/dotfiles"

setup_file() { build_dist; }
setup() { fresh_home; }

# Runs bash code in a new interactive shell with the prompt sourced.
in_prompt_shell() {
  env -i HOME="$HOME" USER="${USER_OVERRIDE:-u}" HOSTNAME="${HOST_OVERRIDE:-web1}" TERM=xterm-256color \
    PATH=/usr/bin:/bin bash --norc -i -c ". '$DOT/prompt.bash'; $1" 2>/dev/null
}

@test "the FNV-1a hash matches a reference and the colour is stable across host name forms" {
  run bash -c ". '$DOT/hostcolor.bash'; bitrot_fnv1a alice@web1; echo \$REPLY; bitrot_fnv1a 'jöran@höst'; echo \$REPLY"
  [ "${lines[0]}" = 2703994368 ]
  [ "${lines[1]}" = 612435131 ]
  a=$(USER=a HOSTNAME=w1.example.com bash -c ". '$DOT/hostcolor.bash'; bitrot_host_color; echo \$BITROT_COLOR_INDEX")
  b=$(USER=a HOSTNAME=w1 bash -c ". '$DOT/hostcolor.bash'; bitrot_host_color; echo \$BITROT_COLOR_INDEX")
  [ "$a" = "$b" ]
}

@test "every palette colour is readable on dark and light backgrounds (0.10 <= L <= 0.30)" {
  run bash -c ". '$DOT/hostcolor.bash'; echo \${BITROT_PALETTE_256[*]}; echo \${BITROT_PALETTE_RGB[*]}"
  python3 - "${lines[0]}" "${lines[1]}" <<'PY'
import sys
def lin(c):
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
def lum(r, g, b):
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
levels = [0, 95, 135, 175, 215, 255]
for i in map(int, sys.argv[1].split()):
    n = i - 16
    r, g, b = levels[n // 36], levels[(n // 6) % 6], levels[n % 6]
    assert 16 <= i <= 231 and 0.10 <= lum(r, g, b) <= 0.30, (i, lum(r, g, b))
for h in sys.argv[2].split():
    r, g, b = (int(h[k:k + 2], 16) for k in (0, 2, 4))
    assert 0.10 <= lum(r, g, b) <= 0.30, (h, lum(r, g, b))
PY
}

@test "BITROT_HOST_COLOR overrides the colour, truecolor is used where the terminal has it" {
  run bash -c ". '$DOT/hostcolor.bash'; BITROT_HOST_COLOR=208 bitrot_host_color; echo \$BITROT_COLOR_SGR"
  [ "$output" = "38;5;208" ]
  run bash -c ". '$DOT/hostcolor.bash'; COLORTERM=truecolor BITROT_HOST_COLOR='#102030' bitrot_host_color; echo \$BITROT_COLOR_SGR"
  [ "$output" = "38;2;16;32;48" ]
  run bash -c ". '$DOT/hostcolor.bash'; COLORTERM=truecolor bitrot_host_color; echo \$BITROT_COLOR_SGR"
  [[ "$output" == "38;2;"* ]]
  # An override wins whatever the terminal; a leading zero is decimal.
  run bash -c ". '$DOT/hostcolor.bash'; COLORTERM=truecolor BITROT_HOST_COLOR=09 bitrot_host_color; echo \$BITROT_COLOR_SGR"
  [ "$output" = "38;5;9" ]
  run bash -c ". '$DOT/hostcolor.bash'; COLORTERM= BITROT_HOST_COLOR='#102030' bitrot_host_color; echo \$BITROT_COLOR_SGR"
  [ "$output" = "38;2;16;32;48" ]
}

@test "every escape in PS1 is wrapped in \\[ \\]" {
  run in_prompt_shell 'false; __bitrot_prompt; printf %s "$PS1"'
  [ -n "$output" ]
  stripped=$(printf '%s' "$output" | sed 's/\\\[[^]]*\\\]//g')
  [[ "$stripped" != *'\e'* ]]
  [[ "$output" == *'\[\e[38;5;'* ]]
}

@test "the hook is added once, keeps other hooks and keeps \$?" {
  run env -i HOME="$HOME" TERM=dumb PATH=/usr/bin:/bin bash --norc -i -c \
    "PROMPT_COMMAND=mine; . '$DOT/prompt.bash'; . '$DOT/prompt.bash'; declare -p PROMPT_COMMAND; false; __bitrot_prompt; echo rc=\$?"
  [[ "$output" == *mine* ]]
  [ "$(grep -o __bitrot_prompt <<<"$output" | wc -l)" -eq 1 ]
  [[ "$output" == *rc=1* ]]
}

@test "the prompt shows the exit status, the git branch, detached commits and operations" {
  repo="$BATS_TEST_TMPDIR/repo"
  git init -q -b main "$repo"
  git -C "$repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
  mkdir -p "$repo/sub/dir"
  run in_prompt_shell "cd '$repo/sub/dir'; (exit 3); __bitrot_prompt; echo \"[\$__bitrot_git][\$__bitrot_status]\""
  [ "$output" = "[ (main)][ [3]]" ]
  touch "$repo/.git/MERGE_HEAD"
  run in_prompt_shell "cd '$repo'; __bitrot_prompt; echo \"\$__bitrot_git\""
  [ "$output" = " (main|MERGING)" ]
  rm "$repo/.git/MERGE_HEAD"
  commit=$(git -C "$repo" rev-parse HEAD)
  git -C "$repo" checkout -q --detach
  run in_prompt_shell "cd '$repo'; __bitrot_prompt; echo \"\$__bitrot_git\""
  [ "$output" = " (${commit:0:7})" ]
  run in_prompt_shell "cd /; __bitrot_prompt; echo \"[\$__bitrot_git]\""
  [ "$output" = "[]" ]
}

@test "a branch name is shown as text, never run" {
  repo="$BATS_TEST_TMPDIR/evil"
  git init -q -b main "$repo"
  printf 'ref: refs/heads/$(touch %s/pwned)\n' "$BATS_TEST_TMPDIR" >"$repo/.git/HEAD"
  run in_prompt_shell "cd '$repo'; __bitrot_prompt; echo \"\${PS1@P}\""
  [ ! -e "$BATS_TEST_TMPDIR/pwned" ]
  [[ "$output" == *'$(touch'* ]]
}

@test "root gets an unmistakable marker" {
  run in_prompt_shell 'printf %s "$PS1"'
  if [ "$(id -u)" -eq 0 ]; then
    [[ "$output" == *ROOT* ]] && [[ "$output" == *'#'* ]]
  else
    [[ "$output" != *ROOT* ]]
  fi
}

@test "tmux loads the config with the prompt's colour and sane defaults" {
  piped_install --yes
  sock="bitrot-test-$$"
  tmux -L "$sock" -f "$HOME/.tmux.conf" new-session -d -x 80 -y 20 'sleep 30'
  sleep 0.5
  want=$(USER=$(id -un) HOSTNAME=$(hostname) bash -c ". '$DOT/hostcolor.bash'; bitrot_host_color; echo colour\$BITROT_COLOR_INDEX")
  got=$(tmux -L "$sock" show -gv @host_color)
  escape=$(tmux -L "$sock" show -sv escape-time)
  base=$(tmux -L "$sock" show -gv base-index)
  tmux -L "$sock" kill-server
  [ "$got" = "$want" ]
  [ "$escape" = 10 ]
  [ "$base" = 1 ]
}

@test "on a real terminal the prompt is coloured and a wrapped long command line stays intact" {
  sock="bitrot-screen-$$"
  tmux -L "$sock" -f /dev/null new-session -d -x 40 -y 10 -c "$HOME" \
    "env -i HOME='$HOME' TERM=xterm-256color PATH=/usr/bin:/bin bash --norc --noprofile -i"
  sleep 0.3
  tmux -L "$sock" send-keys -t 0 ". '$DOT/prompt.bash'" Enter
  sleep 0.3
  tmux -L "$sock" send-keys -t 0 'clear' Enter
  sleep 0.3
  long="echo $(printf 'a%.0s' $(seq 1 50))"
  tmux -L "$sock" send-keys -t 0 -l "$long"
  tmux -L "$sock" send-keys -t 0 C-a
  tmux -L "$sock" send-keys -t 0 -l X
  sleep 0.3
  screen=$(tmux -L "$sock" capture-pane -p -t 0)
  coloured=$(tmux -L "$sock" capture-pane -p -e -t 0)
  tmux -L "$sock" kill-server
  first=$(head -n1 <<<"$screen")
  me="$(id -un)@$(hostname -s)"
  [[ "$first" == "$me:"*"\$ Xecho a"* ]] || [[ "$first" == "ROOT $me:"*"# Xecho a"* ]]
  joined=$(tr -d '\n' <<<"$screen")
  [[ "${joined#*Xecho }" == "$(printf 'a%.0s' $(seq 1 50))"* ]]
  [[ "$coloured" == *$'\e[38;5;'* ]]
}

# An interactive bash that reads the installed ~/.bashrc and runs the lines on stdin as typed
# commands: bash itself runs PROMPT_COMMAND and draws each PS1 (on stderr, here merged).
typed_session() {
  env -i HOME="$HOME" USER=u HOSTNAME=web1 TERM="${TERM_OVERRIDE:-xterm-256color}" ${NO_COLOR:+NO_COLOR=1} \
    PATH=/usr/bin:/bin bash -i 2>&1
}

@test "the prompt survives the usual PROMPT_COMMAND lines later in .bashrc" {
  local variants=(
    "PROMPT_COMMAND='echo HOOK'"
    'PROMPT_COMMAND="echo HOOK; $PROMPT_COMMAND"'
    'PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND; }echo HOOK"'
    "export PROMPT_COMMAND='echo HOOK; history -a'"
    "PROMPT_COMMAND=\${PROMPT_COMMAND:+\$PROMPT_COMMAND\$'\\n'}'echo HOOK'"
    "PROMPT_COMMAND+=(\"echo HOOK\")"
  )
  [ -r /etc/skel/.bashrc ] && variants+=("$(cat /etc/skel/.bashrc)"$'\n'"PROMPT_COMMAND='echo HOOK'")
  for v in "${variants[@]}"; do
    rm -rf "${HOME:?}"/.[!.]* "${HOME:?}"/*
    printf '%s\n' "$v" >"$HOME/.bashrc"
    piped_install --yes 2>/dev/null
    run typed_session <<<$'false\nexit'
    # after `false`: the user's hook ran and the bitrot prompt shows the status, in colour
    [[ "$output" == *HOOK* ]] || { echo "no user hook with: $v" >&2; return 1; }
    [[ "$output" == *$'\e[38;5;'*"@"*"[1]"* ]] || { echo "no bitrot prompt with: $v"$'\n'"$output" >&2; return 1; }
  done
}

@test "BITROT_PROMPT=off keeps the user's PS1, which can still use the colour and the state" {
  printf '%s\n' 'BITROT_PROMPT=off' \
    "PS1='\\[\\e[\${BITROT_COLOR_SGR}m\\]mine\\[\\e[0m\\]\${__bitrot_status}\\$ '" >"$HOME/.bashrc"
  piped_install --yes
  run typed_session <<<$'false\nexit'
  [[ "$output" == *$'\e[38;5;'*"mine"*" [1]"* ]]
  [[ "$output" != *"@"* ]]
}

@test "TERM=dumb and NO_COLOR get a prompt without escapes" {
  piped_install --yes
  TERM_OVERRIDE=dumb run typed_session <<<$'false\nexit'
  [[ "$output" == *"@"*":"*"[1]"* ]]
  [[ "$output" != *$'\e'* ]]
  NO_COLOR=1 run typed_session <<<$'false\nexit'
  [[ "$output" == *"@"*":"*"[1]"* ]]
  [[ "$output" != *$'\e'* ]]
}

# WCAG contrast ratio between two rrggbb colours, computed independently of tmux-color.sh.
contrast() {
  python3 - "$1" "$2" <<'PY'
import sys
def lum(h):
    def lin(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
a, b = sorted((lum(sys.argv[1]), lum(sys.argv[2])))
print("%.2f" % ((b + 0.05) / (a + 0.05)))
PY
}

# rrggbb of a tmux colour: colourN (xterm's cube and greys) or #rrggbb.
colour_hex() {
  case "$1" in
    '#'*) printf '%s' "${1#\#}" ;;
    colour*)
      n=${1#colour}
      if ((n >= 232)); then v=$((8 + 10 * (n - 232))); printf '%02x%02x%02x' $v $v $v
      else i=$((n - 16)); l=(0 95 135 175 215 255); printf '%02x%02x%02x' "${l[i / 36]}" "${l[i / 6 % 6]}" "${l[i % 6]}"; fi ;;
  esac
}

@test "the tmux status text has at least 4.5:1 contrast on every palette colour" {
  # shellcheck disable=SC1091
  source "$DOT/hostcolor.bash"
  worst=99
  for c in "${BITROT_PALETTE_256[@]}" "${BITROT_PALETTE_RGB[@]/#/#}" 16 231 244 '#777777'; do
    read -r bg fg < <(BITROT_HOST_COLOR=$c bash "$DOT/tmux-color.sh" --print)
    ratio=$(contrast "$(colour_hex "$bg")" "$(colour_hex "$fg")")
    awk -v r="$ratio" 'BEGIN { exit !(r >= 4.5) }' || { echo "$bg on $fg: $ratio:1" >&2; return 1; }
    worst=$(awk -v a="$worst" -v b="$ratio" 'BEGIN { print (b < a) ? b : a }')
  done
  echo "worst contrast $worst:1" >&3
}

@test "reloading the tmux config changes no option" {
  piped_install --yes
  sock="bitrot-reload-$$"
  tmux -L "$sock" -f "$HOME/.tmux.conf" new-session -d -x 80 -y 20 'sleep 30'
  sleep 0.5
  first=$(tmux -L "$sock" show -s; tmux -L "$sock" show -g; tmux -L "$sock" show -gw)
  tmux -L "$sock" source-file "$HOME/.tmux.conf"
  tmux -L "$sock" source-file "$HOME/.tmux.conf"
  sleep 0.5
  again=$(tmux -L "$sock" show -s; tmux -L "$sock" show -g; tmux -L "$sock" show -gw)
  style=$(tmux -L "$sock" show -gv status-style)
  tmux -L "$sock" kill-server
  [ "$first" = "$again" ]
  [[ "$style" == *"fg=colour16"* || "$style" == *"fg=colour231"* || "$style" == *"fg=#"* ]]
}
