# shellcheck shell=bash
# bitrot prompt: user@host in the host colour, the directory, the git branch and state, and the
# last exit status when it is not zero. Source it from an interactive bash (4.4 or later).
#
# Per prompt it forks nothing: the colour is computed once when this file is sourced, and the
# git state is read from files under .git. Every escape is wrapped in \[ \] so readline counts
# columns right; the branch name is never spliced into PS1 (a ref named `$(…)` stays text).
# TERM=dumb or NO_COLOR gives the same prompt without any escape.
#
# BITROT_PROMPT=off (anywhere in .bashrc) keeps your own PS1; the hook still keeps the colour
# and the state in variables for it to use:
#   PS1='\[\e[${BITROT_COLOR_SGR}m\]\u@\h\[\e[0m\]:\w${__bitrot_git}${__bitrot_status}\$ '

[[ $- == *i* ]] || return 0

__bitrot_dir=${BASH_SOURCE[0]%/*}
# shellcheck source=dotfiles/hostcolor.bash
. "$__bitrot_dir/hostcolor.bash"
bitrot_host_color

# Finds the git directory above $PWD and describes HEAD: branch or short commit, plus an
# operation in progress. Sets __bitrot_git ("" outside a repository).
__bitrot_git_state() {
  __bitrot_git=
  local d=$PWD g='' head state=''
  while :; do
    if [[ -d $d/.git ]]; then
      g=$d/.git
      break
    elif [[ -f $d/.git ]]; then
      local line
      IFS= read -r line <"$d/.git" || true
      g=${line#gitdir: }
      [[ $g == /* ]] || g=$d/$g
      break
    fi
    [[ -z $d || $d == / ]] && return 0
    d=${d%/*}
  done
  [[ -r $g/HEAD ]] || return 0
  IFS= read -r head <"$g/HEAD" || true
  if [[ $head == ref:\ refs/heads/* ]]; then
    head=${head#ref: refs/heads/}
  else
    head=${head:0:7}
  fi
  if [[ -d $g/rebase-merge || -d $g/rebase-apply ]]; then
    state='|REBASE'
  elif [[ -f $g/MERGE_HEAD ]]; then
    state='|MERGING'
  elif [[ -f $g/CHERRY_PICK_HEAD ]]; then
    state='|CHERRY-PICKING'
  elif [[ -f $g/REVERT_HEAD ]]; then
    state='|REVERTING'
  elif [[ -f $g/BISECT_LOG ]]; then
    state='|BISECTING'
  fi
  __bitrot_git=" ($head$state)"
}

# The PROMPT_COMMAND hook. Keeps $? for hooks that run after it.
__bitrot_prompt() {
  local rc=$?
  # Distribution rc files (Debian's /etc/skel/.bashrc among them) set PS1 after our block ran;
  # the first prompt puts ours back, once, so a PS1 set later by hand is left alone.
  # BITROT_PROMPT=off, set anywhere in .bashrc, keeps the user's own PS1 instead.
  if [[ -z ${__bitrot_ps1_applied-} ]]; then
    __bitrot_ps1_applied=1
    [[ ${BITROT_PROMPT-} == off ]] || PS1=$__bitrot_ps1
  fi
  __bitrot_git_state
  if ((rc != 0)); then
    __bitrot_status=" [$rc]"
  else
    __bitrot_status=
  fi
  return "$rc"
}

__bitrot_build_ps1() {
  local c="\[\e[${BITROT_COLOR_SGR}m\]" bold='\[\e[1m\]' red='\[\e[1;31m\]' reset='\[\e[0m\]'
  # No escapes at all where they would print as garbage or were asked away (no-color.org).
  if [[ ${TERM:-dumb} == dumb || -n ${NO_COLOR-} ]]; then
    c='' bold='' red='' reset=''
  fi
  local who="$c\u@\h$reset" mark='\$'
  if ((EUID == 0)); then
    who="${red}ROOT$reset $c\u@\h$reset"
    mark="$red#$reset"
  fi
  # Single quotes: PS1 expands these variables at each prompt, never their contents.
  # shellcheck disable=SC2016
  __bitrot_ps1="$who:$bold\w$reset"'${__bitrot_git}'"$red"'${__bitrot_status}'"$reset $mark "
  [[ ${BITROT_PROMPT-} == off ]] || PS1=$__bitrot_ps1
}
__bitrot_build_ps1

# Add the hook once, keeping whatever PROMPT_COMMAND already holds. On bash >= 5.1 it is an
# array and the hook never sits in element 0: the usual later lines in .bashrc
# (PROMPT_COMMAND='history -a', PROMPT_COMMAND="x; $PROMPT_COMMAND", +=) assign element 0
# only, so the hook survives them. bash gives every element the $? of the user's command.
if ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))); then
  case " ${PROMPT_COMMAND[*]} " in
    *" __bitrot_prompt "*) ;;
    *)
      if ((${#PROMPT_COMMAND[@]} == 0)); then
        PROMPT_COMMAND[1]=__bitrot_prompt
      else
        PROMPT_COMMAND+=(__bitrot_prompt)
      fi
      ;;
  esac
else
  # Before 5.1 PROMPT_COMMAND is one string: a later plain assignment replaces the hook.
  # shellcheck disable=SC2128,SC2178
  case ";${PROMPT_COMMAND:-};" in
    *";__bitrot_prompt;"*) ;;
    *) PROMPT_COMMAND="__bitrot_prompt${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
