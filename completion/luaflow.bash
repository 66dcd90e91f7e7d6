# bash completion for luaflow: commands and sub-commands, each command's
# options, .lua files, log levels, state classes, formats, and the flow, task
# and Parameter names a flow file mentions (read from the file's text, never by
# running it).
# Installed as <PREFIX>/share/bash-completion/completions/luaflow.

_luaflow_options() {
  local store="--store --no-store"
  case $1 in
    run) echo "--flow --param --param-file --json --log-level --secrets --no-input --resume $store --no-progress --restart --executor --workers --help" ;;
    check) echo "--flow --log-level --help" ;;
    graph) echo "--flow --log-level --run --format -o --output $store --help" ;;
    runs) echo "--flow --state --limit --json $store --help" ;;
    "runs show") echo "--transitions --deliveries --json $store --help" ;;
    "runs logs") echo "--json $store --help" ;;
    "runs prune") echo "--keep --before $store --help" ;;
    "notify test") echo "--task --state --overdue --flow --secrets --log-level --help" ;;
    cache) echo "--json $store --help" ;;
    "cache clear") echo "$store --help" ;;
  esac
}

# The state classes `notify test --state` takes.
_luaflow_classes="Cached Cancelled Cancelling Failed Finished Looped Mapped Paused Pending Queued Resume Retrying Running Scheduled Skipped State Submitted Success TimedOut TriggerFailed ValidationFailed"

# The command: "runs show" for `luaflow runs show ...` ("notify test" for
# `luaflow notify test ...`); and where its own words start.
_luaflow_command() {
  _luaflow_cmd=${COMP_WORDS[1]} _luaflow_first=2
  if [[ $_luaflow_cmd == runs ]] && ((COMP_CWORD > 2)); then
    case ${COMP_WORDS[2]} in
      show | logs | prune) _luaflow_cmd="runs ${COMP_WORDS[2]}" _luaflow_first=3 ;;
      list) _luaflow_first=3 ;;
    esac
  elif [[ $_luaflow_cmd == notify ]] && ((COMP_CWORD > 2)) && [[ ${COMP_WORDS[2]} == test ]]; then
    _luaflow_cmd="notify test" _luaflow_first=3
  elif [[ $_luaflow_cmd == cache ]] && ((COMP_CWORD > 2)); then
    case ${COMP_WORDS[2]} in
      clear) _luaflow_cmd="cache clear" _luaflow_first=3 ;;
      list) _luaflow_first=3 ;;
    esac
  fi
}

# Options that take a value (the next word).
_luaflow_takes_value() {
  case $1 in
    --flow | --param | --param-file | --json | --log-level | --secrets | --resume | --store | \
      --run | --format | -o | --output | --state | --limit | --keep | --before | --task) return 0 ;;
  esac
  return 1
}

# The flow file on the command line: the first word after the command that is
# neither an option nor an option's value.
_luaflow_file() {
  local i word takes_value=""
  for ((i = _luaflow_first; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ -n $takes_value ]]; then
      takes_value=""
    elif [[ $word == --json && $_luaflow_cmd != run ]]; then
      continue # a flag outside `run`
    elif _luaflow_takes_value "$word"; then
      takes_value=1
    elif [[ $word != -* ]]; then
      printf '%s\n' "$word"
      return
    fi
  done
}

# Names a flow file gives as quoted strings: Flow("etl", ...) and
# Flow{name = "etl", ...}; Parameter("n", ...); task("load", ...) and
# Task{name = "load", ...}. Every one on a line counts.
_luaflow_names() {
  local file=$1 kind=$2 pattern
  [[ -r $file ]] || return
  case $kind in
    flow) pattern="Flow *[({] *(name *= *)?[\"'][^\"']+[\"']" ;;
    parameter) pattern="Parameter *\\( *[\"'][^\"']+[\"']" ;;
    task) pattern="[Tt]ask *[({] *(name *= *)?[\"'][^\"']+[\"']" ;;
  esac
  grep -oE -- "$pattern" "$file" | sed -E "s/.*[\"']([^\"']+)[\"']\$/\\1/"
}

_luaflow() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local _luaflow_cmd _luaflow_first
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "run check graph runs notify cache help --help --version" -- "$cur")
    return
  fi
  _luaflow_command
  local cmd=$_luaflow_cmd
  if [[ $cmd == help ]]; then
    ((COMP_CWORD == 2)) && mapfile -t COMPREPLY < <(compgen -W "run check graph runs notify cache" -- "$cur")
    ((COMP_CWORD == 3)) && [[ ${COMP_WORDS[2]} == runs ]] &&
      mapfile -t COMPREPLY < <(compgen -W "show logs prune" -- "$cur")
    return
  fi
  [[ $cmd == run || $cmd == check || $cmd == graph || $cmd == runs* || $cmd == notify* || $cmd == cache* ]] || return
  if [[ $cmd == runs ]] && ((COMP_CWORD == 2)) && [[ $cur != -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "list show logs prune" -- "$cur")
    return
  fi
  if [[ $cmd == cache ]] && ((COMP_CWORD == 2)) && [[ $cur != -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "list clear" -- "$cur")
    return
  fi
  if [[ $cmd == notify ]]; then # only `notify test` has options
    ((COMP_CWORD == 2)) && mapfile -t COMPREPLY < <(compgen -W "test" -- "$cur")
    return
  fi
  if [[ $prev == --json && $cmd == run ]]; then # elsewhere --json is a flag
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    return
  fi
  case $prev in
    --log-level)
      mapfile -t COMPREPLY < <(compgen -W "DEBUG INFO WARNING ERROR CRITICAL debug info warning error critical" -- "$cur")
      return ;;
    --format)
      mapfile -t COMPREPLY < <(compgen -W "dot svg png" -- "$cur")
      return ;;
    --state)
      if [[ $cmd == "notify test" ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_luaflow_classes" -- "$cur")
        return
      fi
      mapfile -t COMPREPLY < <(compgen -W "Success Failed Running Crashed Cancelled TimedOut Skipped Cached Mapped TriggerFailed ValidationFailed Looped Paused" -- "$cur")
      return ;;
    --run)
      mapfile -t COMPREPLY < <(compgen -W "last" -- "$cur")
      return ;;
    --limit | --keep | --before)
      return ;;
    --flow | --param | --resume | --task)
      local kind=flow
      [[ $prev == --param ]] && kind=parameter
      [[ $prev == --resume || $prev == --task ]] && kind=task
      local names
      names=$(_luaflow_names "$(_luaflow_file)" $kind | sort -u)
      [[ $kind == parameter ]] && names=$(printf '%s=\n' $names)
      mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
      [[ $kind == parameter ]] && compopt -o nospace 2>/dev/null
      return ;;
    --secrets | --param-file | --store | -o | --output)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return ;;
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_luaflow_options "$cmd")" -- "$cur")
    return
  fi
  if [[ $cmd == "runs show" || $cmd == "runs logs" ]]; then
    [[ -z $(_luaflow_file) ]] && mapfile -t COMPREPLY < <(compgen -W "last" -- "$cur")
    return
  fi
  if [[ $cmd != runs* && -z $(_luaflow_file) ]]; then # the flow file: .lua files and directories
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -X '!*.lua' -- "$cur"; compgen -d -- "$cur")
  fi
}

complete -F _luaflow luaflow
