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
'--pred=[The predictions\: id,pred, id,logit, both, or a challenge submission (id,preds,...)]:FILE:_files' \
'--truth=[The labels\: a CSV with id,label\[,source\], or a pack (default\: the label column of --pred)]:FILE|PACK:_files' \
'--threshold=[Threshold for accuracy, precision, recall and F1 (default\: 0.5 for pred, 0 for logit)]:T:_default' \
'--roc=[Write the ROC curve (fpr,tpr,threshold) to FILE]:FILE:_files' \
'--plot=[Draw the ROC curves (all objects and each source) with a log FPR axis, and the reliability diagram, into FILE (PNG)]:FILE:_files' \
'--pick-threshold=[Choose a threshold by RULE (fpr=X, tpr=X, f1 or fraction=X) and print it as JSON instead of the metrics]:RULE:_default' \
'--fit-calibration=[Fit a calibration (a temperature) on the logits and write it to FILE as JSON, for lens-ensemble --calibration]:FILE:_files' \
'--platt[With --fit-calibration\: fit a bias as well as the temperature (Platt scaling)]' \
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
