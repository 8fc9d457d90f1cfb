#!/usr/bin/env bash
# Sets tmux's status line to the bitrot host colour (run by tmux.conf at load).
set -euo pipefail
# shellcheck source=dotfiles/hostcolor.bash
. "${BASH_SOURCE[0]%/*}/hostcolor.bash"
bitrot_host_color
if [[ $BITROT_COLOR_MODE == rgb ]]; then
  colour="#$BITROT_COLOR_RGB"
else
  colour="colour$BITROT_COLOR_INDEX"
fi
tmux set-option -g @host_color "$colour" \; \
  set-option -g status-style "bg=$colour,fg=colour255" \; \
  set-option -g pane-active-border-style "fg=$colour" \; \
  set-option -g message-style "bg=$colour,fg=colour255"
