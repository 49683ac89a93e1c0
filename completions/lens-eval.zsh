#compdef lens-eval

autoload -U is-at-least

_lens-eval() {
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
'--pred=[The predictions\: id,pred or id,logit]:FILE:_files' \
'--truth=[The labels\: a CSV with id,label\[,source\], or a pack]:FILE|PACK:_files' \
'--threshold=[Threshold for accuracy, precision, recall and F1 (default\: 0.5 for pred, 0 for logit)]:T:_default' \
'--roc=[Write the ROC curve (fpr,tpr,threshold) to FILE]:FILE:_files' \
'--plot=[Draw the ROC curves (all objects and each source) with a log FPR axis into FILE (PNG)]:FILE:_files' \
'--allow-missing[Evaluate the ids present in both files instead of failing when they differ]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
}

(( $+functions[_lens-eval_commands] )) ||
_lens-eval_commands() {
    local commands; commands=()
    _describe -t commands 'lens-eval commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-eval" ]; then
    _lens-eval "$@"
else
    compdef _lens-eval lens-eval
fi
