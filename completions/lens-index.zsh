#compdef lens-index

autoload -U is-at-least

_lens-index() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "${_arguments_options[@]}" : \
'*--label=[Label for the objects under the roots that follow\: 1 (lens), 0 (non-lens), or "name" to take it from the file name again (the default)]:1|0|name:_default' \
'-o+[Write the index to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--output=[Write the index to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--problems=[Also write every problem to FILE as CSV (kind,id,path,detail)]:FILE:_files' \
'--max-problems=[Fail (exit 2, no index written) when there are more than N problems]:N:_default' \
'-q[Print only the summary, not each problem]' \
'--quiet[Print only the summary, not each problem]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
'*::roots -- Directories, files or glob patterns to scan:_default' \
&& ret=0
}

(( $+functions[_lens-index_commands] )) ||
_lens-index_commands() {
    local commands; commands=()
    _describe -t commands 'lens-index commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-index" ]; then
    _lens-index "$@"
else
    compdef _lens-index lens-index
fi
