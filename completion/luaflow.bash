# bash completion for luaflow: commands, each command's options, .lua files,
# log levels, and the flow and Parameter names a flow file mentions (read from
# the file's text, never by running it).
# Installed as <PREFIX>/share/bash-completion/completions/luaflow.

_luaflow_options() {
  case $1 in
    run) echo "--flow --param --param-file --json --log-level --secrets --no-input --resume --help" ;;
    check | graph) echo "--flow --log-level --help" ;;
  esac
}

# The flow file on the command line: the first word after the command that is
# neither an option nor an option's value.
_luaflow_file() {
  local i word takes_value=""
  for ((i = 2; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ -n $takes_value ]]; then
      takes_value=""
    elif [[ $word == --flow || $word == --param || $word == --param-file || $word == --json ||
            $word == --log-level || $word == --secrets || $word == --resume ]]; then
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
  local cmd=${COMP_WORDS[1]}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "run check graph help --help --version" -- "$cur")
    return
  fi
  if [[ $cmd == help ]]; then
    ((COMP_CWORD == 2)) && mapfile -t COMPREPLY < <(compgen -W "run check graph" -- "$cur")
    return
  fi
  [[ $cmd == run || $cmd == check || $cmd == graph ]] || return
  case $prev in
    --log-level)
      mapfile -t COMPREPLY < <(compgen -W "DEBUG INFO WARNING ERROR CRITICAL debug info warning error critical" -- "$cur")
      return ;;
    --flow | --param | --resume)
      local kind=flow
      [[ $prev == --param ]] && kind=parameter
      [[ $prev == --resume ]] && kind=task
      local names
      names=$(_luaflow_names "$(_luaflow_file)" $kind | sort -u)
      [[ $kind == parameter ]] && names=$(printf '%s=\n' $names)
      mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
      [[ $kind == parameter ]] && compopt -o nospace 2>/dev/null
      return ;;
    --json | --secrets | --param-file)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return ;;
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_luaflow_options "$cmd")" -- "$cur")
    return
  fi
  if [[ -z $(_luaflow_file) ]]; then # the flow file: .lua files and directories
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -X '!*.lua' -- "$cur"; compgen -d -- "$cur")
  fi
}

complete -F _luaflow luaflow
