#!/usr/bin/env bash
# Sets tmux's status line to the bitrot host colour (run by tmux.conf at load). The text on it
# is black or white, whichever contrasts more with that colour: with the colour's WCAG relative
# luminance L, black gives (L+0.05)/0.05 and white 1.05/(L+0.05); the larger is never below
# 4.58:1, whatever colour BITROT_HOST_COLOR picks.
# Usage: tmux-color.sh            set the options in the running tmux
#        tmux-color.sh --print    print "BACKGROUND FOREGROUND" instead (for tests)
set -euo pipefail
# shellcheck source=dotfiles/hostcolor.bash
. "${BASH_SOURCE[0]%/*}/hostcolor.bash"

# rrggbb of xterm's 256-colour index $1 (xterm's defaults for the first 16).
xterm_rgb() {
  local n=$1 i levels=(0 95 135 175 215 255)
  local base=(000000 cd0000 00cd00 cdcd00 0000ee cd00cd 00cdcd e5e5e5 7f7f7f ff0000 00ff00 ffff00 5c5cff ff00ff 00ffff ffffff)
  if ((n < 16)); then
    printf '%s' "${base[n]}"
  elif ((n < 232)); then
    i=$((n - 16))
    printf '%02x%02x%02x' "${levels[i / 36]}" "${levels[i / 6 % 6]}" "${levels[i % 6]}"
  else
    i=$((8 + 10 * (n - 232)))
    printf '%02x%02x%02x' "$i" "$i" "$i"
  fi
}

# "black" or "white": the text colour that contrasts more with background rrggbb $1.
text_for() {
  awk -v hex="$1" 'function lin(c) { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ^ 2.4 }
    BEGIN {
      r = lin(("0x" substr(hex, 1, 2)) + 0); g = lin(("0x" substr(hex, 3, 2)) + 0); b = lin(("0x" substr(hex, 5, 2)) + 0)
      L = 0.2126 * r + 0.7152 * g + 0.0722 * b
      print ((L + 0.05) / 0.05 >= 1.05 / (L + 0.05)) ? "black" : "white"
    }'
}

main() {
  local colour rgb text fg
  bitrot_host_color
  if [[ $BITROT_COLOR_MODE == rgb ]]; then
    colour="#$BITROT_COLOR_RGB"
    rgb=$BITROT_COLOR_RGB
  else
    colour="colour$BITROT_COLOR_INDEX"
    rgb=$(xterm_rgb "$BITROT_COLOR_INDEX")
  fi
  text=$(text_for "$rgb")
  # colour16 and colour231 are exact black and white; tmux's "black"/"white" follow the
  # terminal's own palette.
  if [[ $BITROT_COLOR_MODE == rgb ]]; then
    fg='#000000'
    [[ $text == white ]] && fg='#ffffff'
  else
    fg=colour16
    [[ $text == white ]] && fg=colour231
  fi
  if [[ ${1-} == --print ]]; then
    printf '%s %s\n' "$colour" "$fg"
    return 0
  fi
  tmux set-option -g @host_color "$colour" \; \
    set-option -g status-style "bg=$colour,fg=$fg" \; \
    set-option -g pane-active-border-style "fg=$colour" \; \
    set-option -g message-style "bg=$colour,fg=$fg"
}

main "$@"
