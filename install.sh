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
#
# One transaction: nothing lands before everything is staged and checked. The release is
# downloaded (or built) and unpacked into a work directory under the prefix, then checked
# (checksums, archive members, free space, writable destinations, glibc, that each binary
# runs), then moved in by rename. Every change is written to the work directory's journal
# before it is made; on any failure or signal the journal is undone newest first (old files
# moved back, new files and directories removed, rc files restored) and the work directory is
# removed on every exit. An install killed outright leaves its work directory behind; the next
# run of install.sh undoes it before doing anything else.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "bitrot install.sh needs bash: run it as 'curl -fsSL …/install.sh | bash' or 'bash install.sh'" >&2
  exit 1
fi

{

readonly MARK_BEGIN='# >>> bitrot >>>'
readonly MARK_END='# <<< bitrot <<<'
# The release archives' checksums ("NAME=SHA256 ..."), filled in by scripts/dist.sh in the
# install.sh it ships beside them, so that an archive and .sha256 replaced together are still
# caught. Empty in a checkout: then the .sha256 beside the archive is the only check.
RELEASE_SHA256=''

usage() {
  cat <<'USAGE'
Usage: install.sh [FLAGS]

  --prefix DIR      install under DIR (bin/, share/)          BITROT_PREFIX   (default ~/.local)
  --from DIR        build from the checkout at DIR            BITROT_FROM
  --dry-run         print the plan; download, build and write nothing   BITROT_DRY_RUN=1
  --uninstall       remove exactly what install added         BITROT_UNINSTALL=1
  --no-modify-rc    leave ~/.bashrc, ~/.profile, ~/.tmux.conf BITROT_NO_MODIFY_RC=1
  --modify-rc       edit them even as root into a system prefix   BITROT_MODIFY_RC=1
  --no-dotfiles     no prompt and tmux config                 BITROT_NO_DOTFILES=1
  --allow-http      accept a plain http:// download URL       BITROT_ALLOW_HTTP=1
  -y, --yes         accepted for scripts (never prompts)      BITROT_YES=1
  -h, --help        this text

Release archives come from BITROT_DOWNLOAD_URL (https:// or file://) when not run from a
checkout, fetched with curl or else wget. Each is checked against its .sha256 and, in the
install.sh served with a release, against the checksum the installer itself carries.
BITROT_CARGO_PROFILE picks the cargo profile for checkout builds (default release).

As root with a prefix outside HOME (sudo bash install.sh --prefix /usr/local), rc files are
left alone unless --modify-rc is given.

Nothing lands before everything is downloaded, unpacked and checked; a failure at any step
undoes what was done and names the step and the path.
Exit status: 0 done, 1 failed (everything undone), 2 bad usage.
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
  MODIFY_RC=0
  NO_DOTFILES=0
  ALLOW_HTTP=0
  STAGE_ONLY=
  truthy "${BITROT_DRY_RUN:-}" && DRY_RUN=1
  truthy "${BITROT_UNINSTALL:-}" && UNINSTALL=1
  truthy "${BITROT_NO_MODIFY_RC:-}" && NO_RC=1
  truthy "${BITROT_MODIFY_RC:-}" && MODIFY_RC=1
  truthy "${BITROT_NO_DOTFILES:-}" && NO_DOTFILES=1
  truthy "${BITROT_ALLOW_HTTP:-}" && ALLOW_HTTP=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; PREFIX=$2; shift ;;
      --prefix=*) PREFIX=${1#*=} ;;
      --from) [ $# -ge 2 ] || usage_error "--from needs a directory"; FROM=$2; shift ;;
      --from=*) FROM=${1#*=} ;;
      --dry-run) DRY_RUN=1 ;;
      --uninstall) UNINSTALL=1 ;;
      --no-modify-rc) NO_RC=1 ;;
      --modify-rc) MODIFY_RC=1 ;;
      --no-dotfiles) NO_DOTFILES=1 ;;
      --allow-http) ALLOW_HTTP=1 ;;
      -y | --yes) ;;
      --stage) [ $# -ge 2 ] || usage_error "--stage needs a directory"; STAGE_ONLY=$2; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "unknown flag '$1'" ;;
    esac
    shift
  done
  [ "$NO_RC" = 1 ] && [ "$MODIFY_RC" = 1 ] && usage_error "--no-modify-rc and --modify-rc contradict each other"
  case "$PREFIX" in /*) ;; *) PREFIX=$PWD/$PREFIX ;; esac
  PREFIX=${PREFIX%/}
  return 0
}

usage_error() {
  say "error: $*"
  usage >&2
  exit 2
}

# --- the transaction: a work directory with a journal -----------------------------------------
#
# WORK ($PREFIX/.bitrot-install.XXXXXX) holds pid, journal, stage/ (the release tree), dl/ (the
# download) and old/N (what a change moved aside). Journal lines, each written before its change:
#   mkdir PATH         a directory was created          undo: rmdir (after WORK is gone)
#   new PATH           a file that did not exist        undo: rm
#   replaced N PATH    PATH's old version is at old/N   undo: move old/N back (if it got there)

# Appends a journal line; before WORK exists (creating the prefix itself) lines wait in PENDING.
journal() {
  if [ -n "${WORK:-}" ]; then printf '%s\n' "$*" >>"$WORK/journal"; else PENDING+=("$*"); fi
}

# Runs a command that changes the disk; if it fails, dies naming the step, the path and the
# command's own message.
run_step() {
  local what=$1 path=$2 err
  shift 2
  if ! err=$("$@" 2>&1); then
    die "$what $path failed: ${err:-no message}"
  fi
}

# Creates directory $1 and any missing parents, journalled and remembered for the manifest.
do_mkdir() {
  local d=$1 missing=() i
  while [ ! -d "$d" ]; do
    missing+=("$d")
    d=$(dirname -- "$d")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$DRY_RUN" = 1 ]; then say "would create directory $1"; return 0; fi
  for ((i = ${#missing[@]} - 1; i >= 0; i--)); do
    journal "mkdir ${missing[i]}"
    run_step "creating directory" "${missing[i]}" mkdir -- "${missing[i]}"
    CREATED_DIRS+=("${missing[i]}")
  done
}

# Moves file $1 to $2 by rename; whatever was at $2 is moved aside into WORK first.
land() {
  local src=$1 dest=$2 n
  if [ -e "$dest" ] || [ -L "$dest" ]; then
    SAVED=$((SAVED + 1))
    n=$SAVED
    journal "replaced $n $dest"
    run_step "moving aside" "$dest" mv -f -- "$dest" "$WORK/old/$n"
  else
    journal "new $dest"
  fi
  run_step "installing" "$dest" mv -f -- "$src" "$dest"
}

begin_work() {
  do_mkdir "$PREFIX"
  WORK=$(mktemp -d "$PREFIX/.bitrot-install.XXXXXX") || die "creating a work directory in $PREFIX failed"
  mkdir -- "$WORK/old" "$WORK/stage" "$WORK/dl"
  printf '%s\n' "$$" >"$WORK/pid"
  [ ${#PENDING[@]} -eq 0 ] || printf '%s\n' "${PENDING[@]}" >>"$WORK/journal"
  PENDING=()
}

# Undoes work directory $1's journal newest first, then removes it and the directories the
# journal created (last, since the work directory lives in one of them). If something cannot
# be put back, the work directory stays with the old files and the journal, and this fails.
undo_work() {
  local work=$1 lines=() dirs=() i kind rest n path failed=0
  [ -f "$work/journal" ] && mapfile -t lines <"$work/journal"
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    kind=${lines[i]%% *}
    rest=${lines[i]#* }
    case "$kind" in
      mkdir) dirs+=("$rest") ;;
      new) rm -f -- "$rest" 2>/dev/null || failed=1 ;;
      replaced)
        n=${rest%% *}
        path=${rest#* }
        # Nothing to put back when the change never happened (the old file is still there).
        if [ -f "$work/old/$n" ] && [ ! -L "$work/old/$n" ] && cmp -s -- "$work/old/$n" "$path"; then
          rm -f -- "$work/old/$n"
        elif [ -e "$work/old/$n" ] || [ -L "$work/old/$n" ]; then
          mv -f -- "$work/old/$n" "$path" || failed=1
        fi
        ;;
    esac
  done
  if [ "$failed" = 1 ]; then
    say "error: could not put everything back; the old files and the journal are kept in $work"
    return 1
  fi
  rm -rf -- "$work"
  for path in "${dirs[@]}"; do rmdir -- "$path" 2>/dev/null || true; done
}

# Undoes installs that were killed outright (their process is gone) before this one starts.
recover_stale() {
  local w pid
  for w in "$PREFIX"/.bitrot-install.*; do
    [ -d "$w" ] || continue
    pid=$(cat -- "$w/pid" 2>/dev/null) || pid=
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then continue; fi
    if [ "$DRY_RUN" = 1 ]; then say "would undo the interrupted install in $w"; continue; fi
    say "undoing an interrupted install ($w)"
    undo_work "$w" || die "the interrupted install in $w could not be undone; see its journal"
  done
}

# The EXIT trap: a committed install only drops its work directory; anything else is undone.
# shellcheck disable=SC2317  # called by the trap
on_exit() {
  local status=$? i
  set +e
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    if [ "$COMMITTED" = 1 ]; then
      rm -rf -- "$WORK"
    elif undo_work "$WORK"; then
      [ "$status" -ne 0 ] || status=1
      say "undone: everything this run changed was put back"
    else
      status=1
    fi
  elif [ "$COMMITTED" != 1 ]; then
    for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do rmdir -- "${CREATED_DIRS[i]}" 2>/dev/null; done
  fi
  [ -z "${MANIFEST_COPY:-}" ] || rm -f -- "$MANIFEST_COPY"
  exit "$status"
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

# Picks where the release comes from: SOURCE=checkout with CHECKOUT set, or SOURCE=download.
# Checks that the tools that source needs are here before anything is touched.
pick_source() {
  CHECKOUT=
  if [ -n "$FROM" ]; then
    [ -f "$FROM/Cargo.toml" ] || die "--from $FROM is not a bitrot checkout (no Cargo.toml); nothing was changed"
    CHECKOUT=$(cd -- "$FROM" && pwd)
  elif CHECKOUT=$(own_checkout); then
    :
  fi
  if [ -n "$CHECKOUT" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) or use a release archive (BITROT_DOWNLOAD_URL); nothing was changed"
    return 0
  fi
  [ -n "${BITROT_DOWNLOAD_URL:-}" ] || die "not run from a checkout and BITROT_DOWNLOAD_URL is not set; nothing was changed"
  ARCHIVE=$(platform).tar.gz
  check_url "$BITROT_DOWNLOAD_URL"
  case "$BITROT_DOWNLOAD_URL" in
    file://*) ;;
    *) command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 ||
      die "neither curl nor wget is installed: install one of them; nothing was changed" ;;
  esac
}

check_url() {
  case "$1" in
    https://* | file://*) ;;
    http://*)
      [ "$ALLOW_HTTP" = 1 ] ||
        die "refusing $1: plain http can be altered on the way; use https://, or --allow-http on a network you trust; nothing was changed"
      ;;
    *) die "BITROT_DOWNLOAD_URL must start with https:// or file:// (it is '$1'); nothing was changed" ;;
  esac
}

# Fetches URL $1 into file $2: file:// by copying, otherwise with curl, or wget without curl.
fetch() {
  local url=$1 out=$2 protos='=https'
  [ "$ALLOW_HTTP" = 1 ] && protos='=https,http'
  case "$url" in
    file://*) run_step "downloading" "$url" cp -- "${url#file://}" "$out" ;;
    *)
      if command -v curl >/dev/null 2>&1; then
        run_step "downloading" "$url" curl -fsSL --retry 2 --proto "$protos" --proto-redir "$protos" -o "$out" "$url"
      else
        # wget cannot limit the schemes a redirect may use; the checksums still hold.
        run_step "downloading" "$url" wget -q --tries=2 --timeout=60 -O "$out" "$url"
      fi
      ;;
  esac
}

# Builds the checkout $1 and lays out the release tree in $2.
stage_from_checkout() {
  local src=$1 stage=$2 profile=${BITROT_CARGO_PROFILE:-release} outdir bin
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) or use a release archive (BITROT_DOWNLOAD_URL); nothing was changed"
  say "building $src (cargo build --profile $profile --locked)"
  (cd "$src" && cargo build --profile "$profile" --locked --bins >&2) || die "cargo build failed in $src"
  outdir=$src/target/$profile
  [ "$profile" = dev ] && outdir=$src/target/debug
  mkdir -p "$stage/bin" "$stage/share/man/man1" "$stage/share/bash-completion/completions" "$stage/share/bitrot"
  while IFS= read -r bin; do
    cp "$outdir/$bin" "$stage/bin/$bin"
    # Debug info is for target/, not for installed tools (a dev build's is 95% of its size);
    # the release profile strips already, so this matters only for other profiles.
    if command -v strip >/dev/null 2>&1; then strip --strip-debug "$stage/bin/$bin"; fi
    # One page per subcommand; each starts after a "### bitrot-man-page NAME.1" line.
    "$outdir/$bin" --generate man-pages |
      awk -v dir="$stage/share/man/man1" '$1 == "###" && $2 == "bitrot-man-page" { f = dir "/" $3; next } { print > f }'
    "$outdir/$bin" --generate bash-completion >"$stage/share/bash-completion/completions/$bin"
  done < <(bin_names "$src")
  cp "$src"/dotfiles/hostcolor.bash "$src"/dotfiles/prompt.bash "$src"/dotfiles/tmux.conf "$src"/dotfiles/tmux-color.sh "$stage/share/bitrot/"
}

# The checksum this installer carries for archive $1, if any.
embedded_sum() {
  local entry
  for entry in $RELEASE_SHA256; do
    [ "${entry%%=*}" = "$1" ] && { printf '%s' "${entry#*=}"; return 0; }
  done
  return 1
}

# Downloads the release archive into WORK, checks it and unpacks it into $1.
stage_from_download() {
  local stage=$1 base=$BITROT_DOWNLOAD_URL name=$ARCHIVE dl=$WORK/dl want got carried
  fetch "$base/$name.sha256" "$dl/$name.sha256"
  fetch "$base/$name" "$dl/$name"
  want=$(cut -d' ' -f1 <"$dl/$name.sha256")
  [[ "$want" =~ ^[0-9a-f]{64}$ ]] || die "$base/$name.sha256 does not hold a SHA-256 checksum"
  got=$(sha256sum "$dl/$name" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "checksum mismatch for $name: expected $want (from $name.sha256), got $got"
  if carried=$(embedded_sum "$name"); then
    [ "$got" = "$carried" ] ||
      die "$name does not match the checksum this install.sh carries (expected $carried, got $got): the archive and its .sha256 were replaced"
  fi
  check_archive "$dl/$name"
  run_step "unpacking" "$dl/$name" tar -xzf "$dl/$name" -C "$stage" --no-same-owner
  rm -f -- "$dl/$name"
}

# Refuses an archive with anything but plain files and directories inside the tree, and one
# whose unpacked size does not fit in the prefix's free space.
check_archive() {
  local archive=$1 listing need avail
  listing=$(tar -tvzf "$archive" 2>&1) || die "cannot read $archive: $listing"
  if ! printf '%s\n' "$listing" | awk 'substr($0, 1, 1) !~ /^[-d]$/ { bad = 1 } END { exit bad }'; then
    die "$archive holds entries that are not plain files or directories (links or devices)"
  fi
  if tar -tzf "$archive" | grep -E '^/|(^|/)\.\.(/|$)' >/dev/null; then
    die "$archive holds paths outside its own tree"
  fi
  need=$(printf '%s\n' "$listing" | awk '{ s += $3 } END { printf "%d", s }')
  avail=$(df --output=avail -B1 -- "$WORK" | tail -n1 | tr -d ' ')
  if [ "$need" -gt "$avail" ]; then
    die "not enough space in $PREFIX: the release needs $((need / 1048576 + 1)) MiB unpacked, $((avail / 1048576)) MiB are free"
  fi
}

# The staged tree must hold binaries that run here: glibc new enough, and each answers --version.
check_release() {
  local stage=$1 need have bin out
  [ -d "$stage/bin" ] || die "the release holds no bin/ directory"
  need=$({ grep -ahoE 'GLIBC_2\.[0-9]+' "$stage"/bin/* || true; } | sed 's/^GLIBC_//' | sort -uV | tail -n1)
  if [ -n "$need" ]; then
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null) || have=
    have=${have#glibc }
    [ -n "$have" ] ||
      die "bitrot's release binaries need GNU libc $need or newer and this system has none (musl?): build from source instead (bash install.sh in a checkout, with Rust installed)"
    if [ "$(printf '%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
      die "bitrot's release binaries need glibc $need or newer and this system has glibc $have: upgrade the system, or build from source (bash install.sh in a checkout, with Rust installed)"
    fi
  fi
  for bin in "$stage"/bin/*; do
    out=$("$bin" --version 2>&1) || die "the release's ${bin##*/} does not run on this machine: $out"
  done
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

# Plans rc file $1 with block $2: replaced in place if present, else put first (so it also runs
# in non-interactive shells, before the usual early return). Unchanged files are not planned.
add_rc() {
  local rc=$1 block=$2 old new
  old=$(cat -- "$rc" 2>/dev/null; printf x)
  old=${old%x}
  if has_block "$rc"; then
    new=$(replace_block "$rc" "$block" && printf x) || die "cannot read $rc"
  else
    new=$(printf '%s\n%s' "$block" "$old"; printf x)
  fi
  new=${new%x}
  if [ -f "$rc" ] && [ "$new" = "$old" ]; then return 0; fi
  RC_FILES+=("$rc")
  RC_NEW+=("$new")
}

# Fills RC_FILES and RC_NEW with the rc files to edit and their new contents.
plan_rc() {
  RC_FILES=()
  RC_NEW=()
  [ "$NO_RC" = 1 ] && return 0
  add_rc "$HOME/.bashrc" "$(path_block bashrc)"
  add_rc "$(login_rc)" "$(path_block login)"
  [ "$NO_DOTFILES" = 1 ] || add_rc "$HOME/.tmux.conf" "$(tmux_block)"
}

# Writes content $2 into rc file $1 (through a symlink to its target, which stays a symlink);
# the original is backed up once to $1.bitrot.bak and saved in WORK for undo.
apply_rc() {
  local rc=$1 new=$2 target tmp n
  target=$(readlink -f -- "$rc" 2>/dev/null) || target=$rc
  if [ -f "$target" ]; then
    if [ ! -e "$rc.bitrot.bak" ]; then
      journal "new $rc.bitrot.bak"
      run_step "backing up" "$rc" cp -p -- "$target" "$rc.bitrot.bak"
    fi
    SAVED=$((SAVED + 1))
    n=$SAVED
    run_step "saving" "$target" cp -p -- "$target" "$WORK/old/$n"
    journal "replaced $n $target"
  else
    journal "new $target"
  fi
  tmp=$target.bitrot-new.$$
  journal "new $tmp"
  run_step "writing" "$tmp" write_file "$tmp" "$new"
  if [ -f "$target" ]; then chmod --reference="$target" -- "$tmp"; else chmod 644 -- "$tmp"; fi
  run_step "writing" "$target" mv -f -- "$tmp" "$target"
  say "updated $rc"
}

# shellcheck disable=SC2317  # called through run_step
write_file() { printf '%s' "$2" >"$1"; }

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

# A .bashrc given the block this run that sets a PS1 of its own gets bitrot's prompt instead
# at the first prompt: say so, and how to keep it.
note_own_ps1() {
  local rc
  [ "$NO_DOTFILES" = 0 ] || return 0
  for rc in "${RC_FILES[@]}"; do
    [ "$rc" = "$HOME/.bashrc" ] || continue
    grep -qE '^[^#]*PS1=' "$rc" || return 0
    grep -qE '^[^#]*BITROT_PROMPT=off' "$rc" && return 0
    say "$rc sets PS1: the bitrot prompt takes its place; BITROT_PROMPT=off in $rc keeps yours"
  done
  return 0
}

# Root installing into a system prefix leaves root's own rc files alone unless asked.
decide_rc() {
  [ "$NO_RC" = 1 ] || [ "$MODIFY_RC" = 1 ] && return 0
  [ "$(id -u)" = 0 ] || return 0
  case "$PREFIX/" in "$HOME"/*) return 0 ;; esac
  NO_RC=1
  say "leaving $HOME's rc files alone for a system prefix ($PREFIX); --modify-rc edits them"
}

# --- install and uninstall --------------------------------------------------------------------

manifest() { printf '%s' "$PREFIX/share/bitrot/install-manifest"; }

# The destination directories, known before the release is fetched.
dest_dirs() {
  printf '%s\n' "$PREFIX/bin" "$PREFIX/share/man/man1" "$PREFIX/share/bash-completion/completions" "$PREFIX/share/bitrot"
}

# Every place a file will go must be writable: the nearest existing directory of each.
check_writable() {
  local d
  for d in "$@"; do
    while [ ! -e "$d" ] && [ ! -L "$d" ]; do d=$(dirname -- "$d"); done
    [ -d "$d" ] || die "$d is in the way: bitrot needs a directory there; nothing was changed"
    { [ -w "$d" ] && [ -x "$d" ]; } ||
      die "cannot write in $d (read-only or not permitted): fix its permissions or choose another --prefix; nothing was changed"
  done
}

# Fills TREE with the staged files to install (relative paths), refusing a destination that is
# a directory (moving it aside would hide the user's files in the work directory).
plan_tree() {
  local stage=$1 rel dest
  TREE=()
  while IFS= read -r rel; do
    case "$rel" in share/bitrot/*) [ "$NO_DOTFILES" = 1 ] && continue ;; esac
    dest=$PREFIX/$rel
    if [ -d "$dest" ] && [ ! -L "$dest" ]; then
      die "$dest is a directory where bitrot installs a file: move it away; nothing was changed"
    fi
    TREE+=("$rel")
  done < <(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
}

# Writes to $1 the manifest that will hold once this install is done: the old one's lines plus
# every file, created directory, created rc file and backup of this one.
build_manifest() {
  local out=$1 old=() line rel rc
  if [ -f "$(manifest)" ]; then
    while IFS= read -r line; do old+=("$line"); done <"$(manifest)"
  fi
  {
    printf '%s\n' "${old[@]}"
    for rel in "${TREE[@]}"; do printf 'file %s\n' "$PREFIX/$rel"; done
    [ ${#CREATED_DIRS[@]} -eq 0 ] || printf 'dir %s\n' "${CREATED_DIRS[@]}"
    for rc in "${RC_FILES[@]}"; do
      if [ ! -e "$rc" ]; then printf 'rc-created %s\n' "$rc"
      elif [ ! -e "$rc.bitrot.bak" ]; then printf 'backup %s\n' "$rc.bitrot.bak"; fi
    done
    printf 'rc %s\n' "$HOME/.bashrc" "$(login_rc)" "$HOME/.tmux.conf"
  } | grep -v '^$' | awk '!seen[$0]++' >"$out"
}

rc_dirs() {
  local rc
  [ "$NO_RC" = 1 ] && return 0
  for rc in "$HOME/.bashrc" "$(login_rc)" "$HOME/.tmux.conf"; do
    dirname -- "$(readlink -f -- "$rc" 2>/dev/null || printf '%s' "$rc")"
  done
  printf '%s\n' "$HOME"
}

refuse_sudo_into_home() {
  [ "$(id -u)" = 0 ] || return 0
  [ -n "${SUDO_USER:-}" ] || return 0
  case "$PREFIX/" in
    "$HOME"/*) die "refusing to run under sudo into $HOME: run as your user, or give a system prefix (--prefix /usr/local)" ;;
  esac
}

dry_run() {
  local i
  recover_stale
  if [ -n "$CHECKOUT" ]; then
    say "would build $CHECKOUT (cargo build --profile ${BITROT_CARGO_PROFILE:-release} --locked)"
  else
    say "would download $BITROT_DOWNLOAD_URL/$ARCHIVE and its .sha256, check and unpack them"
  fi
  say "would install bin/, share/man/man1/, share/bash-completion/completions/$([ "$NO_DOTFILES" = 1 ] || printf ' and share/bitrot/') under $PREFIX"
  plan_rc
  for ((i = 0; i < ${#RC_FILES[@]}; i++)); do
    [ -f "${RC_FILES[i]}" ] && [ ! -e "${RC_FILES[i]}.bitrot.bak" ] && say "would back up ${RC_FILES[i]} to ${RC_FILES[i]}.bitrot.bak"
    say "would write ${RC_FILES[i]}"
  done
  say "dry run: nothing was downloaded, built or written"
}

do_install() {
  local rel d i
  refuse_sudo_into_home
  decide_rc
  [ "$NO_RC" = 1 ] || check_markers "$HOME/.bashrc" "$(login_rc)" "$HOME/.tmux.conf"
  pick_source
  if [ "$DRY_RUN" = 1 ]; then dry_run; return 0; fi
  recover_stale
  mapfile -t d < <(dest_dirs; rc_dirs)
  check_writable "${d[@]}"
  begin_work
  if [ -n "$CHECKOUT" ]; then stage_from_checkout "$CHECKOUT" "$WORK/stage"; else stage_from_download "$WORK/stage"; fi
  check_release "$WORK/stage"
  plan_tree "$WORK/stage"
  plan_rc
  for rel in "${TREE[@]}"; do do_mkdir "$(dirname -- "$PREFIX/$rel")"; done
  do_mkdir "$(dirname -- "$(manifest)")"
  # The manifest lands first, so that it names every file before the first one lands.
  build_manifest "$WORK/manifest"
  chmod 644 -- "$WORK/manifest"
  cmp -s -- "$WORK/manifest" "$(manifest)" || land "$WORK/manifest" "$(manifest)"
  for rel in "${TREE[@]}"; do
    cmp -s -- "$WORK/stage/$rel" "$PREFIX/$rel" || land "$WORK/stage/$rel" "$PREFIX/$rel"
  done
  for ((i = 0; i < ${#RC_FILES[@]}; i++)); do apply_rc "${RC_FILES[i]}" "${RC_NEW[i]}"; done
  COMMITTED=1
  note_own_ps1
  say "installed into $PREFIX"
  case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) [ "$NO_RC" = 0 ] || say "add $PREFIX/bin to PATH yourself (rc files were left alone)" ;;
  esac
  return 0
}

# --- uninstall: edits rc files and removes files one by one, as listed in the manifest -------

# Writes stdin to $1 through a temporary file and a rename (following a symlink to its target).
do_write() {
  local dest=$1 target tmp
  target=$(readlink -f -- "$dest" 2>/dev/null || printf '%s' "$dest")
  if [ "$DRY_RUN" = 1 ]; then say "would write $dest"; cat >/dev/null; return 0; fi
  tmp=$(mktemp "$(dirname -- "$target")/.bitrot.XXXXXX")
  cat >"$tmp"
  if [ -e "$target" ]; then chmod --reference="$target" "$tmp"; else chmod 644 "$tmp"; fi
  mv -f -- "$tmp" "$target"
}

do_remove() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  if [ "$DRY_RUN" = 1 ]; then say "would remove $1"; return 0; fi
  rm -f -- "$1"
}

do_uninstall() {
  local kind path rest
  recover_stale
  [ -f "$(manifest)" ] || die "bitrot is not installed under $PREFIX (no $(manifest))"
  MANIFEST_COPY=$(mktemp)
  cp -- "$(manifest)" "$MANIFEST_COPY"
  while read -r kind path; do
    [ "$kind" = rc ] && check_markers "$path"
  done <"$MANIFEST_COPY"
  while read -r kind path; do
    case "$kind" in
      rc)
        has_block "$path" || continue
        rest=$(replace_block "$path" "" && printf x) || die "cannot edit $path"
        printf '%s' "${rest%x}" | do_write "$path"
        say "removed the bitrot block from $path"
        ;;
    esac
  done <"$MANIFEST_COPY"
  while read -r kind path; do
    case "$kind" in
      rc-created) [ -s "$path" ] || do_remove "$path" ;;
      backup | file) do_remove "$path" ;;
    esac
  done <"$MANIFEST_COPY"
  do_remove "$(manifest)"
  if [ "$DRY_RUN" = 0 ]; then
    while read -r kind path; do
      if [ "$kind" = dir ]; then printf '%s\n' "$path"; fi
    done <"$MANIFEST_COPY" | sort -r | while IFS= read -r d; do rmdir -- "$d" 2>/dev/null || true; done
  fi
  COMMITTED=1
  say "uninstalled from $PREFIX"
}

main() {
  set -euo pipefail
  CREATED_DIRS=()
  PENDING=()
  TREE=()
  RC_FILES=()
  RC_NEW=()
  SAVED=0
  COMMITTED=0
  WORK=
  parse_args "$@"
  trap on_exit EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ -n "$STAGE_ONLY" ]; then
    local src
    src=${FROM:-$(own_checkout)} || die "--stage needs a checkout"
    mkdir -p "$STAGE_ONLY"
    stage_from_checkout "$src" "$STAGE_ONLY"
    COMMITTED=1
    return 0
  fi
  if [ "$UNINSTALL" = 1 ]; then do_uninstall; else do_install; fi
}

main "$@"
exit
}
