#compdef lens-ensemble

autoload -U is-at-least

_lens-ensemble() {
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
'*--weights=[One weight per model, comma-separated (default\: equal)]:W1,W2,...:_default' \
'--threshold=[Add a column label = 1 if pred >= T, else 0, for challenge-style binary submissions]:T:_default' \
'-o+[Write to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--output=[Write to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--allow-missing[Average over the models that score an id instead of failing when id sets differ]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
'*::models -- Logits files (or quoted glob patterns of shards), one per model:_default' \
&& ret=0
}

(( $+functions[_lens-ensemble_commands] )) ||
_lens-ensemble_commands() {
    local commands; commands=()
    _describe -t commands 'lens-ensemble commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-ensemble" ]; then
    _lens-ensemble "$@"
else
    compdef _lens-ensemble lens-ensemble
fi
