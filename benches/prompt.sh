#!/usr/bin/env bash
# Prompt and installer benchmark (issue: install.sh and dotfiles).
# - time per prompt: 100 prompts (the PROMPT_COMMAND hook plus PS1 expansion) in a real
#   interactive bash inside tmux, against a plain PS1='\u@\h:\w\$ ' in the same run, and the
#   processes forked while drawing them (strace, when installed);
# - time of a full install from a release archive into a fresh HOME (5 runs), the archive's
#   size and what the four binaries take once installed.
# Prints a table and a final RESULT line. Run: bash benches/prompt.sh
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
N=100

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

# Prints the mean µs per prompt of N runs of the hooks and the PS1 expansion.
prompt_loop() {
  cat <<LOOP
cd "$ROOT"
t0=\$EPOCHREALTIME
for ((i = 0; i < $N; i++)); do
  for h in "\${PROMPT_COMMAND[@]}"; do eval "\$h"; done
  p=\${PS1@P}
done
t1=\$EPOCHREALTIME
echo \$(( (\${t1/./} - \${t0/./}) / $N ))
LOOP
}

# Processes created by an interactive bash that draws $1 bitrot prompts.
forks_for() {
  (cd "$ROOT" && strace -f -e trace=clone,clone3,fork,vfork -o /dev/stdout \
    bash --norc -i -c ". $ROOT/dotfiles/prompt.bash; for ((i=0;i<$1;i++)); do __bitrot_prompt; p=\${PS1@P}; done" \
    2>/dev/null </dev/null | grep -c -E 'clone|fork') || true
}

main() {
  local plain bitrot forks="n/a" t0 t1 install_ms=() home tmp archive_kb bin_kb
  plain=$({ printf '%s\n' "PS1='\\u@\\h:\\w\\\$ '" 'PROMPT_COMMAND=()'; prompt_loop; } | in_tmux_bash)
  bitrot=$({ printf '. %s\n' "$ROOT/dotfiles/prompt.bash"; prompt_loop; } | in_tmux_bash)
  if command -v strace >/dev/null 2>&1; then
    # Forks per prompt: the difference between N prompts and none, over N.
    forks=$(( ($(forks_for "$N") - $(forks_for 0)) / N ))
  fi
  tmp=$(mktemp -d)
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
  rm -rf "$tmp"
  IFS=$'\n' read -r -d '' -a sorted < <(printf '%s\n' "${install_ms[@]}" | sort -n; printf '\0') || true
  printf '## prompt and install (loadavg %s)\n\n' "$(cut -d' ' -f1 /proc/loadavg)"
  printf '| what | value |\n|---|---|\n'
  printf '| plain PS1, µs per prompt | %s |\n' "$plain"
  printf '| bitrot prompt, µs per prompt | %s |\n' "$bitrot"
  printf '| processes forked per bitrot prompt | %s |\n' "$forks"
  printf '| full install from a release archive, ms (median of 5) | %s |\n' "${sorted[2]}"
  printf '| release archive, KiB | %s |\n' "$archive_kb"
  printf '| the four binaries installed, KiB | %s |\n' "$bin_kb"
  printf '\nRESULT plain_prompt_us=%s bitrot_prompt_us=%s prompt_forks=%s install_ms=%s archive_kb=%s bin_kb=%s loadavg=%s\n' \
    "$plain" "$bitrot" "$forks" "${sorted[2]}" "$archive_kb" "$bin_kb" "$(cut -d' ' -f1 /proc/loadavg)"
}

main "$@"
