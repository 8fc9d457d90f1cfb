#!/usr/bin/env bash
# bitrot installer: binaries, man pages, bash completions and dotfiles into ~/.local (or
# --prefix), with PATH and the prompt added to your shell rc files inside one marker block.
#
#   curl -fsSL …/install.sh | bash
#   curl -fsSL …/install.sh | bash -s -- --prefix ~/opt --no-dotfiles
#   bash install.sh [FLAGS]          (from a checkout: builds with cargo)
#
# Every flag has an environment twin, shown in --help.
#
# Inert at any cut: after the sh guard (builtins only, so `| sh` gets a clear message instead of
# a parse error), the whole body is one brace group closed on the last line with the call to
# main inside it. bash parses the group to its closing brace before running any of it, so a
# download cut short anywhere is a syntax error that runs nothing. `exit` after main keeps bash
# from reading past the group should the file change while it runs.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "bitrot install.sh needs bash: run it as 'curl -fsSL …/install.sh | bash' or 'bash install.sh'" >&2
  exit 1
fi

{

readonly MARK_BEGIN='# >>> bitrot >>>'
readonly MARK_END='# <<< bitrot <<<'

usage() {
  cat <<'USAGE'
Usage: install.sh [FLAGS]

  --prefix DIR      install under DIR (bin/, share/)          BITROT_PREFIX   (default ~/.local)
  --from DIR        build from the checkout at DIR            BITROT_FROM
  --dry-run         print what would be done, write nothing   BITROT_DRY_RUN=1
  --uninstall       remove exactly what install added         BITROT_UNINSTALL=1
  --no-modify-rc    leave ~/.bashrc, ~/.profile, ~/.tmux.conf BITROT_NO_MODIFY_RC=1
  --no-dotfiles     no prompt and tmux config                 BITROT_NO_DOTFILES=1
  -y, --yes         accepted for scripts (never prompts)      BITROT_YES=1
  -h, --help        this text

Release archives come from BITROT_DOWNLOAD_URL (https:// or file://) when not run from a
checkout; each is checked against its .sha256. BITROT_CARGO_PROFILE picks the cargo profile
for checkout builds (default release).

Exit status: 0 done, 1 failed (nothing was changed unless a step says otherwise), 2 bad usage.
USAGE
}

say() { printf 'bitrot: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

truthy() {
  case "${1:-}" in 1 | y | yes | true | on) return 0 ;; *) return 1 ;; esac
}

parse_args() {
  PREFIX=${BITROT_PREFIX:-${HOME:?HOME is not set}/.local}
  FROM=${BITROT_FROM:-}
  DRY_RUN=0
  UNINSTALL=0
  NO_RC=0
  NO_DOTFILES=0
  STAGE_ONLY=
  truthy "${BITROT_DRY_RUN:-}" && DRY_RUN=1
  truthy "${BITROT_UNINSTALL:-}" && UNINSTALL=1
  truthy "${BITROT_NO_MODIFY_RC:-}" && NO_RC=1
  truthy "${BITROT_NO_DOTFILES:-}" && NO_DOTFILES=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; PREFIX=$2; shift ;;
      --prefix=*) PREFIX=${1#*=} ;;
      --from) [ $# -ge 2 ] || usage_error "--from needs a directory"; FROM=$2; shift ;;
      --from=*) FROM=${1#*=} ;;
      --dry-run) DRY_RUN=1 ;;
      --uninstall) UNINSTALL=1 ;;
      --no-modify-rc) NO_RC=1 ;;
      --no-dotfiles) NO_DOTFILES=1 ;;
      -y | --yes) ;;
      --stage) [ $# -ge 2 ] || usage_error "--stage needs a directory"; STAGE_ONLY=$2; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "unknown flag '$1'" ;;
    esac
    shift
  done
  case "$PREFIX" in /*) ;; *) PREFIX=$PWD/$PREFIX ;; esac
  PREFIX=${PREFIX%/}
}

usage_error() {
  say "error: $*"
  usage >&2
  exit 2
}

# --- actions that change the disk: each one prints instead under --dry-run -------------------

# Creates directory $1 and any missing parents, remembering each one created (for uninstall).
do_mkdir() {
  local d=$1 missing=()
  while [ ! -d "$d" ]; do
    missing+=("$d")
    d=$(dirname -- "$d")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$DRY_RUN" = 1 ]; then say "would create directory $1"; return 0; fi
  mkdir -p "$1"
  CREATED_DIRS+=("${missing[@]}")
}

# Writes stdin to $1 through a temporary file and a rename (following a symlink to its target).
do_write() {
  local dest=$1 mode=${2:-} target tmp
  target=$(readlink -f -- "$dest" 2>/dev/null || printf '%s' "$dest")
  if [ "$DRY_RUN" = 1 ]; then say "would write $dest"; cat >/dev/null; return 0; fi
  tmp=$(mktemp "$(dirname -- "$target")/.bitrot.XXXXXX")
  cat >"$tmp"
  if [ -n "$mode" ]; then chmod "$mode" "$tmp"; elif [ -e "$target" ]; then chmod --reference="$target" "$tmp"; else chmod 644 "$tmp"; fi
  mv -f -- "$tmp" "$target"
}

do_remove() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  if [ "$DRY_RUN" = 1 ]; then say "would remove $1"; return 0; fi
  rm -f -- "$1"
}

# --- sources ----------------------------------------------------------------------------------

platform() {
  local os arch
  os=$(uname -s)
  arch=$(uname -m)
  case "$os" in Linux) os=linux ;; *) die "unsupported platform: $os $arch (bitrot releases are built for Linux x86_64 and aarch64)" ;; esac
  case "$arch" in x86_64 | amd64) arch=x86_64 ;; aarch64 | arm64) arch=aarch64 ;; *) die "unsupported platform: $os $arch (bitrot releases are built for Linux x86_64 and aarch64)" ;; esac
  printf 'bitrot-%s-%s' "$os" "$arch"
}

# The checkout this script runs from, if any.
own_checkout() {
  local src=${BASH_SOURCE[0]:-} dir
  [ -n "$src" ] && [ -f "$src" ] || return 1
  dir=$(cd -- "$(dirname -- "$src")" && pwd)
  grep -q '^name = "bitrot"' "$dir/Cargo.toml" 2>/dev/null || return 1
  printf '%s' "$dir"
}

bin_names() {
  sed -n '/^\[\[bin\]\]/,/^$/s/^name = "\(.*\)"/\1/p' "$1/Cargo.toml"
}

# Builds the checkout $1 and lays out the release tree in $2.
stage_from_checkout() {
  local src=$1 stage=$2 profile=${BITROT_CARGO_PROFILE:-release} outdir bin
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) or use a release archive (BITROT_DOWNLOAD_URL); nothing was installed"
  say "building $src (cargo build --profile $profile --locked)"
  (cd "$src" && cargo build --profile "$profile" --locked --bins >&2) || die "cargo build failed in $src; nothing was installed"
  outdir=$src/target/$profile
  [ "$profile" = dev ] && outdir=$src/target/debug
  mkdir -p "$stage/bin" "$stage/share/man/man1" "$stage/share/bash-completion/completions" "$stage/share/bitrot"
  while IFS= read -r bin; do
    cp "$outdir/$bin" "$stage/bin/$bin"
    "$outdir/$bin" --generate man >"$stage/share/man/man1/$bin.1"
    "$outdir/$bin" --generate bash-completion >"$stage/share/bash-completion/completions/$bin"
  done < <(bin_names "$src")
  cp "$src"/dotfiles/hostcolor.bash "$src"/dotfiles/prompt.bash "$src"/dotfiles/tmux.conf "$src"/dotfiles/tmux-color.sh "$stage/share/bitrot/"
}

# Downloads and checks the release archive for this platform, unpacks it into $1.
stage_from_download() {
  local stage=$1 name base got want tmp
  base=${BITROT_DOWNLOAD_URL:-}
  [ -n "$base" ] || die "not run from a checkout and BITROT_DOWNLOAD_URL is not set; nothing was installed"
  name=$(platform).tar.gz
  command -v curl >/dev/null 2>&1 || die "curl not found: install curl; nothing was installed"
  tmp=$(mktemp -d)
  curl -fsSL "$base/$name" -o "$tmp/$name" || die "cannot download $base/$name; nothing was installed"
  curl -fsSL "$base/$name.sha256" -o "$tmp/$name.sha256" || die "cannot download $base/$name.sha256; nothing was installed"
  want=$(cut -d' ' -f1 <"$tmp/$name.sha256")
  got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "checksum mismatch for $name: expected $want, got $got; nothing was installed"
  tar -xzf "$tmp/$name" -C "$stage" || die "cannot unpack $name; nothing was installed"
  rm -rf "$tmp"
}

# --- rc files ---------------------------------------------------------------------------------

# Prints file $1 with the marker block replaced by $2 (empty: removed). Awk ends every line
# with a newline; when the file did not end with one, the last one is taken off again, so a
# removal gives back the original bytes.
replace_block() {
  local out
  out=$(BLK=$2 awk -v b="$MARK_BEGIN" -v e="$MARK_END" \
    '$0 == b {if (ENVIRON["BLK"] != "") print ENVIRON["BLK"]; skip = 1; next} skip && $0 == e {skip = 0; next} !skip' "$1" &&
    printf x) || return 1
  out=${out%x}
  if [ -s "$1" ] && [ -n "$(tail -c1 -- "$1")" ]; then out=${out%$'\n'}; fi
  printf '%s' "$out"
}

has_block() {
  [ -f "$1" ] && grep -qxF "$MARK_BEGIN" "$1"
}

# Refuses (before anything is written) an rc file whose marker lines do not pair up: editing
# it would drop the user's lines after a begin marker whose end marker was deleted.
check_markers() {
  local rc
  for rc in "$@"; do
    [ -f "$rc" ] || continue
    awk -v b="$MARK_BEGIN" -v e="$MARK_END" \
      '$0 == b {if (open) exit 1; open = 1} $0 == e {if (!open) exit 1; open = 0} END {exit open}' "$rc" ||
      die "$rc: the '$MARK_BEGIN' and '$MARK_END' lines do not pair up; mend or remove them by hand (nothing was changed)"
  done
}

backup_once() {
  local rc=$1
  [ -f "$rc" ] && [ ! -e "$rc.bitrot.bak" ] || return 0
  if [ "$DRY_RUN" = 1 ]; then
    say "would back up $rc to $rc.bitrot.bak"
    return 0
  fi
  cp -p -- "$(readlink -f -- "$rc")" "$rc.bitrot.bak"
  BACKUPS+=("$rc.bitrot.bak")
}

# Puts block $2 into rc file $1: replaced in place if present, else put first (so it also runs
# in non-interactive shells, before the usual early return); the original is backed up once; a
# symlinked rc file stays a symlink.
set_block() {
  local rc=$1 block=$2 old new
  old=$(cat -- "$rc" 2>/dev/null; printf x)
  old=${old%x}
  if has_block "$rc"; then
    new=$(replace_block "$rc" "$block" && printf x) || die "cannot edit $rc"
  else
    new=$(printf '%s\n%s' "$block" "$old"; printf x)
  fi
  new=${new%x}
  if [ -f "$rc" ] && [ "$new" = "$old" ]; then return 0; fi
  backup_once "$rc"
  [ -f "$rc" ] || CREATED_RC+=("$rc")
  printf '%s' "$new" | do_write "$rc"
  say "updated $rc"
}

path_block() {
  printf '%s\n' "$MARK_BEGIN" \
    "# Added by bitrot's install.sh; 'install.sh --uninstall' removes this block." \
    "case \":\$PATH:\" in *\":$PREFIX/bin:\"*) ;; *) export PATH=\"$PREFIX/bin:\$PATH\" ;; esac"
  if [ "$1" = bashrc ] && [ "$NO_DOTFILES" = 0 ]; then
    printf '%s\n' "if [[ \$- == *i* ]] && [ -r \"$PREFIX/share/bitrot/prompt.bash\" ]; then . \"$PREFIX/share/bitrot/prompt.bash\"; fi"
  fi
  printf '%s' "$MARK_END"
}

tmux_block() {
  printf '%s\n' "$MARK_BEGIN" \
    "set -g @bitrot_share \"$PREFIX/share/bitrot\"" \
    "source-file \"$PREFIX/share/bitrot/tmux.conf\"" \
    "$MARK_END"
}

login_rc() {
  if [ -f "$HOME/.bash_profile" ]; then printf '%s' "$HOME/.bash_profile"
  elif [ -f "$HOME/.bash_login" ]; then printf '%s' "$HOME/.bash_login"
  else printf '%s' "$HOME/.profile"; fi
}

edit_rc_files() {
  set_block "$HOME/.bashrc" "$(path_block bashrc)"
  set_block "$(login_rc)" "$(path_block login)"
  [ "$NO_DOTFILES" = 1 ] || set_block "$HOME/.tmux.conf" "$(tmux_block)"
}

# --- install and uninstall --------------------------------------------------------------------

manifest() { printf '%s' "$PREFIX/share/bitrot/install-manifest"; }

install_tree() {
  local stage=$1 rel dest src mode
  while IFS= read -r rel; do
    case "$rel" in share/bitrot/*) [ "$NO_DOTFILES" = 1 ] && continue ;; esac
    dest=$PREFIX/$rel
    src=$stage/$rel
    do_mkdir "$(dirname -- "$dest")"
    INSTALLED+=("$dest")
    if cmp -s "$src" "$dest"; then continue; fi
    mode=$(stat -c %a "$src")
    do_write "$dest" "$mode" <"$src"
  done < <(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
}

write_manifest() {
  local old=() line
  # First, so that a share/bitrot made only for the manifest (--no-dotfiles) is listed in it.
  do_mkdir "$(dirname -- "$(manifest)")"
  if [ -f "$(manifest)" ]; then
    while IFS= read -r line; do old+=("$line"); done <"$(manifest)"
  fi
  {
    printf '%s\n' "${old[@]}"
    printf 'file %s\n' "${INSTALLED[@]}"
    [ ${#CREATED_DIRS[@]} -eq 0 ] || printf 'dir %s\n' "${CREATED_DIRS[@]}"
    [ ${#CREATED_RC[@]} -eq 0 ] || printf 'rc-created %s\n' "${CREATED_RC[@]}"
    [ ${#BACKUPS[@]} -eq 0 ] || printf 'backup %s\n' "${BACKUPS[@]}"
    printf 'rc %s\n' "$HOME/.bashrc" "$(login_rc)" "$HOME/.tmux.conf"
  } | grep -v '^$' | awk '!seen[$0]++' >"$MANIFEST_TMP"
  if cmp -s "$MANIFEST_TMP" "$(manifest)"; then return 0; fi
  do_write "$(manifest)" 644 <"$MANIFEST_TMP"
}

refuse_sudo_into_home() {
  [ "$(id -u)" = 0 ] || return 0
  [ -n "${SUDO_USER:-}" ] || return 0
  case "$PREFIX/" in
    "$HOME"/*) die "refusing to run under sudo into $HOME: run as your user, or give a system prefix (--prefix /usr/local)" ;;
  esac
}

do_install() {
  local stage
  refuse_sudo_into_home
  [ "$NO_RC" = 1 ] || check_markers "$HOME/.bashrc" "$(login_rc)" "$HOME/.tmux.conf"
  stage=$(mktemp -d)
  STAGE_DIR=$stage
  if [ -n "$FROM" ]; then
    [ -f "$FROM/Cargo.toml" ] || die "--from $FROM is not a bitrot checkout (no Cargo.toml)"
    stage_from_checkout "$FROM" "$stage"
  elif src=$(own_checkout); then
    stage_from_checkout "$src" "$stage"
  else
    stage_from_download "$stage"
  fi
  install_tree "$stage"
  # The manifest is written before the rc files are touched (and again after), so that an
  # install killed in between can still be undone with --uninstall.
  write_manifest
  [ "$NO_RC" = 1 ] || edit_rc_files
  write_manifest
  say "installed into $PREFIX$([ "$DRY_RUN" = 1 ] && printf ' (dry run: nothing was written)')"
  [ "$NO_RC" = 1 ] && say "add $PREFIX/bin to PATH yourself (--no-modify-rc)"
  return 0
}

do_uninstall() {
  local kind path rest
  [ -f "$(manifest)" ] || die "bitrot is not installed under $PREFIX (no $(manifest))"
  while read -r kind path; do
    [ "$kind" = rc ] && check_markers "$path"
  done <"$(manifest)"
  while read -r kind path; do
    case "$kind" in
      rc)
        has_block "$path" || continue
        rest=$(replace_block "$path" "" && printf x) || die "cannot edit $path"
        printf '%s' "${rest%x}" | do_write "$path"
        say "removed the bitrot block from $path"
        ;;
    esac
  done <"$(manifest)"
  while read -r kind path; do
    case "$kind" in
      rc-created) [ -s "$path" ] || do_remove "$path" ;;
      backup | file) do_remove "$path" ;;
    esac
  done <"$(manifest)"
  do_remove "$(manifest)"
  if [ "$DRY_RUN" = 0 ]; then
    while read -r kind path; do
      if [ "$kind" = dir ]; then printf '%s\n' "$path"; fi
    done <"$(manifest_copy)" | sort -r | while IFS= read -r d; do rmdir -- "$d" 2>/dev/null || true; done
  fi
  say "uninstalled from $PREFIX"
}

main() {
  set -euo pipefail
  CREATED_DIRS=()
  CREATED_RC=()
  BACKUPS=()
  INSTALLED=()
  parse_args "$@"
  MANIFEST_TMP=$(mktemp)
  trap 'rm -rf "$MANIFEST_TMP" "${STAGE_DIR:-}" "${MANIFEST_COPY:-}"' EXIT
  if [ -n "$STAGE_ONLY" ]; then
    local src
    src=${FROM:-$(own_checkout)} || die "--stage needs a checkout"
    mkdir -p "$STAGE_ONLY"
    stage_from_checkout "$src" "$STAGE_ONLY"
    return 0
  fi
  if [ "$UNINSTALL" = 1 ]; then
    MANIFEST_COPY=$(mktemp)
    [ -f "$(manifest)" ] && cp "$(manifest)" "$MANIFEST_COPY"
    do_uninstall
  else
    do_install
  fi
}

manifest_copy() { printf '%s' "$MANIFEST_COPY"; }

main "$@"
exit
}
