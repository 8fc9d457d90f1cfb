# shellcheck shell=bash
# shellcheck disable=SC2034  # the BITROT_* variables are read by prompt.bash and tmux-color.sh
# bitrot host colour: a stable, readable colour per user@host, computed in pure bash (no fork).
#
# bitrot_host_color sets:
#   BITROT_COLOR_INDEX  a 256-colour index from a palette whose WCAG relative luminance is
#                       between 0.10 and 0.30 (readable on dark and light backgrounds: at least
#                       3:1 against both black and white); reds are left out for root/errors
#   BITROT_COLOR_RGB    the truecolor choice (rrggbb, OKLCH L=0.60 C=0.12, hue from the hash)
#   BITROT_COLOR_MODE   rgb on truecolor terminals (COLORTERM=truecolor|24bit), else 256
#   BITROT_COLOR_SGR    the SGR parameters for that mode: 38;2;r;g;b or 38;5;N
# BITROT_HOST_COLOR overrides: a 256-colour index (0-255, decimal) or #rrggbb; either sets
# the mode to its own kind.

# 53 xterm-256 entries with 0.10 <= L <= 0.30, greys and reds excluded.
BITROT_PALETTE_256=(25 26 27 28 29 30 31 32 33 58 60 61 62 63 64 65 66 67 68 69 92 93 94 96 97
  98 99 100 101 103 104 105 126 127 128 129 130 133 134 135 136 137 139 163 164 165 166 170 171
  199 200 201 202)
# 32 OKLCH hues (every 10 degrees, reds skipped) at L=0.60, C=0.12, all within 0.10 <= L <= 0.30.
BITROT_PALETTE_RGB=(b95f7d b86838 b36d2a ad721c a57710 9c7c0b 918112 85861f 778a2d 688e3b
  57914a 439458 2b9667 009775 009783 009690 00959c 0092a8 0090b1 008cba 2b88c0 4284c5 5480c7
  647bc8 7377c6 8072c2 8c6ebd 966ab5 a067ac a864a2 af6297 b4608a)

# 32-bit FNV-1a of the bytes of $1, into REPLY.
bitrot_fnv1a() {
  local LC_ALL=C s=$1 i c h=2166136261
  for ((i = 0; i < ${#s}; i++)); do
    printf -v c '%d' "'${s:i:1}"
    ((c < 0)) && ((c += 256))
    ((h = ((h ^ c) * 16777619) & 0xFFFFFFFF))
  done
  REPLY=$h
}

# The identity the colour is derived from: user@short-host.
bitrot_identity() {
  local user=${USER:-${LOGNAME:-$(id -un 2>/dev/null)}}
  local host=${HOSTNAME:-${HOST:-localhost}}
  REPLY="$user@${host%%.*}"
}

bitrot_host_color() {
  bitrot_identity
  bitrot_fnv1a "$REPLY"
  local h=$REPLY rgb
  BITROT_COLOR_INDEX=${BITROT_PALETTE_256[h % ${#BITROT_PALETTE_256[@]}]}
  BITROT_COLOR_RGB=${BITROT_PALETTE_RGB[h % ${#BITROT_PALETTE_RGB[@]}]}
  # Truecolor where the terminal has it; an override picks its own kind, whatever the terminal.
  case ${COLORTERM:-} in
    truecolor | 24bit) BITROT_COLOR_MODE=rgb ;;
    *) BITROT_COLOR_MODE=256 ;;
  esac
  case ${BITROT_HOST_COLOR:-} in
    '') ;;
    \#[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F])
      BITROT_COLOR_RGB=${BITROT_HOST_COLOR#\#}
      BITROT_COLOR_MODE=rgb
      ;;
    *[!0-9]*) ;;
    *)
      # 10#: a leading zero (08) is decimal, not a bad octal number.
      if ((10#$BITROT_HOST_COLOR <= 255)); then
        BITROT_COLOR_INDEX=$((10#$BITROT_HOST_COLOR))
        BITROT_COLOR_MODE=256
      fi
      ;;
  esac
  if [[ $BITROT_COLOR_MODE == rgb ]]; then
    rgb=$BITROT_COLOR_RGB
    BITROT_COLOR_SGR="38;2;$((16#${rgb:0:2}));$((16#${rgb:2:2}));$((16#${rgb:4:2}))"
  else
    BITROT_COLOR_SGR="38;5;$BITROT_COLOR_INDEX"
  fi
}
