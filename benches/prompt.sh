#!/usr/bin/env bash
# Prompt and installer benchmark (issue: install.sh and dotfiles).
# - time per prompt (the PROMPT_COMMAND hooks plus PS1 expansion, in a real interactive bash
#   inside tmux) and processes forked per prompt (strace, when installed), for a plain
#   PS1='\u@\h:\w\$ ', the bitrot prompt, git's __git_ps1 with GIT_PS1_SHOWDIRTYSTATE and
#   liquidprompt (Debian's package, when installed), all in the same run, in three places:
#   outside any repository, in a small repository and in one of 50,000 files (real files:
#   /usr/share, then the cargo registry's sources);
# - time of a full install from a release archive into a fresh HOME (5 runs), the archive's
#   size and what the four binaries take once installed.
# Prints a table and a final RESULT line. Run: bash benches/prompt.sh
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
N=100
LARGE_FILES=50000

# Runs the bash code on stdin in an interactive bash under tmux and prints what it printed.
in_tmux_bash() {
  local sock="bitrot-bench-$$" out script
  out=$(mktemp)
  script=$(mktemp)
  cat >"$script"
  tmux -L "$sock" -f /dev/null new-session -d -x 120 -y 20 \
    "env -i HOME=\"$HOME\" TERM=xterm-256color PATH=/usr/bin:/bin bash --norc --noprofile -i -c '. $script' >$out 2>/dev/null"
  while tmux -L "$sock" has-session 2>/dev/null; do sleep 0.1; done
  cat "$out"
  rm -f "$out" "$script"
}

# The set-up lines of prompt $1.
prompt_setup() {
  case "$1" in
    plain) printf '%s\n' "PS1='\\u@\\h:\\w\\\$ '" 'PROMPT_COMMAND=()' ;;
    bitrot) printf '. %q\n' "$ROOT/dotfiles/prompt.bash" ;;
    git_ps1)
      printf '%s\n' '. /usr/lib/git-core/git-sh-prompt' 'GIT_PS1_SHOWDIRTYSTATE=1' \
        "PROMPT_COMMAND=('__git_ps1 \"\\u@\\h:\\w\" \"\\\\\$ \"')"
      ;;
    liquidprompt) printf '%s\n' '. /usr/share/liquidprompt/liquidprompt' ;;
  esac
}

have_prompt() {
  case "$1" in
    git_ps1) [ -r /usr/lib/git-core/git-sh-prompt ] ;;
    liquidprompt) [ -r /usr/share/liquidprompt/liquidprompt ] ;;
    *) true ;;
  esac
}

# Prints the mean µs per prompt of $2 runs of the hooks and the PS1 expansion in directory $1.
prompt_loop() {
  cat <<LOOP
cd $(printf '%q' "$1")
t0=\$EPOCHREALTIME
for ((i = 0; i < $2; i++)); do
  for h in "\${PROMPT_COMMAND[@]}"; do eval "\$h"; done
  p=\${PS1@P}
done
t1=\$EPOCHREALTIME
echo \$(( (\${t1/./} - \${t0/./}) / $2 ))
LOOP
}

# Processes created while prompt $1 draws $3 prompts in directory $2.
forks_for() {
  local script
  script=$(mktemp)
  { prompt_setup "$1"; printf 'cd %q\n' "$2"
    # shellcheck disable=SC2016  # the loop runs in the shell under test
    printf 'for ((i=0;i<%d;i++)); do for h in "${PROMPT_COMMAND[@]}"; do eval "$h"; done; p=${PS1@P}; done\n' "$3"; } >"$script"
  strace -f -e trace=clone,clone3,fork,vfork -o /dev/stdout \
    env -i HOME="$HOME" TERM=xterm-256color PATH=/usr/bin:/bin bash --norc --noprofile -i -c ". $script" \
    2>/dev/null </dev/null | grep -c -E 'clone|fork' || true
  rm -f "$script"
}

# A repository of $2 real files (from /usr/share, then the cargo registry) at $1, committed.
make_repo() {
  local dir=$1 count=$2
  git init -q "$dir"
  { find /usr/share -type f -size -256k 2>/dev/null | sort; find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -type f -size -256k 2>/dev/null | sort; } |
    head -n "$count" | while IFS= read -r f; do
      mkdir -p "$dir/${f%/*}"
      cp "$f" "$dir/$f" 2>/dev/null || true
    done || true # head closes the pipe on find
  git -C "$dir" add -A >/dev/null 2>&1
  git -C "$dir" -c user.name=bench -c user.email=bench@localhost commit -q -m files >/dev/null
  # one modified file, so that the dirty state has something to find
  local f
  f=$(find "$dir/usr" -type f -name '*.txt' -print -quit)
  if [ -n "$f" ]; then echo x >>"$f"; fi
}

main() {
  local place dir n peer us forks install_ms=() home t0 t1 archive_kb bin_kb large_files tmp
  local results=() result_kv=()
  tmp=$(mktemp -d)
  BENCH_TMP=$tmp
  trap 'rm -rf "$BENCH_TMP"' EXIT
  mkdir "$tmp/outside"
  make_repo "$tmp/small" 40
  make_repo "$tmp/large" "$LARGE_FILES"
  large_files=$(git -C "$tmp/large" ls-files | wc -l)
  for place in outside small large; do
    dir=$tmp/$place
    n=$N
    [ "$place" = large ] && n=20
    for peer in plain bitrot git_ps1 liquidprompt; do
      have_prompt "$peer" || continue
      us=$({ prompt_setup "$peer"; prompt_loop "$dir" "$n"; } | in_tmux_bash)
      forks=n/a
      if command -v strace >/dev/null 2>&1; then
        forks=$(( ($(forks_for "$peer" "$dir" "$n") - $(forks_for "$peer" "$dir" 0)) / n ))
      fi
      results+=("| $place | $peer | $us | $forks |")
      result_kv+=("${peer}_${place}_us=$us" "${peer}_${place}_forks=$forks")
    done
  done

  BITROT_CARGO_PROFILE=${BITROT_CARGO_PROFILE:-release} "$ROOT/scripts/dist.sh" "$tmp/dist" >/dev/null
  archive_kb=$(($(stat -c %s "$tmp"/dist/*.tar.gz) / 1024))
  for _ in 1 2 3 4 5; do
    home=$(mktemp -d)
    t0=$EPOCHREALTIME
    HOME=$home BITROT_DOWNLOAD_URL="file://$tmp/dist" bash -s -- --yes <"$ROOT/install.sh" 2>/dev/null
    t1=$EPOCHREALTIME
    install_ms+=($(((${t1/./} - ${t0/./}) / 1000)))
    bin_kb=$(du -sk "$home/.local/bin" | cut -f1)
    rm -rf "$home"
  done
  IFS=$'\n' read -r -d '' -a sorted < <(printf '%s\n' "${install_ms[@]}" | sort -n; printf '\0') || true

  printf '## prompt and install (loadavg %s; large repository: %s files)\n\n' "$(cut -d' ' -f1 /proc/loadavg)" "$large_files"
  printf '| place | prompt | µs per prompt | processes forked per prompt |\n|---|---|---|---|\n'
  printf '%s\n' "${results[@]}"
  printf '\n| what | value |\n|---|---|\n'
  printf '| full install from a release archive, ms (median of 5) | %s |\n' "${sorted[2]}"
  printf '| release archive, KiB | %s |\n' "$archive_kb"
  printf '| the four binaries installed, KiB | %s |\n' "$bin_kb"
  printf '\nRESULT %s install_ms=%s archive_kb=%s bin_kb=%s loadavg=%s\n' \
    "${result_kv[*]}" "${sorted[2]}" "$archive_kb" "$bin_kb" "$(cut -d' ' -f1 /proc/loadavg)"
}

main "$@"
