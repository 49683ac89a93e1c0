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
'(--weights-from)*--weights=[One weight per model, comma-separated (default\: equal)]:W1,W2,...:_default' \
'*--weights-from=[Choose the weights on validation\: one validation predictions file per model (RUN/val_predictions.csv, in the order of the models), on a shared split. The weights (non-negative, summing to 1) maximise validation AUC or minimise log-loss (--weights-metric); equal weights win unless something does strictly better, so the choice is never worse than equal weights on validation. Prints the weights, both scores and a warning for each member whose validation AUC is more than 0.01 below the best member'\''s]:VAL1,VAL2,...:_default' \
'--weights-metric=[What --weights-from optimises\: auc or log-loss]:METRIC:(auc log-loss)' \
'--threshold=[Call objects lenses\: T, a probability (pred >= T, after --calibration), or FILE, a threshold chosen by lens-eval --pick-threshold (a threshold on logits applies to the ensemble'\''s mean logit before calibration, so a calibration never changes the decisions; pick it on uncalibrated validation scores). Adds a column label (called with validation predictions), or sets preds with --format challenge]:T|FILE:_default' \
'--calibration=[Calibrate the probabilities with FILE (lens-eval --fit-calibration)\: pred = sigmoid(mean logit / T + b). The ranking is unchanged]:FILE:_files' \
'--format=[Output format\: scores (id,pred) or challenge (the challenge'\''s 41 columns; needs --threshold)]:FORMAT:((scores\:"id,pred (with validation predictions\: id,label,source,logit,pred)"
challenge\:"The challenge'\''s 41 columns\: id, preds (1/0 at the threshold), -999 in the others"))' \
'-o+[Write to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--output=[Write to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--allow-missing[Average over the models that score an id instead of failing when id sets differ]' \
'-q[No summary of --weights-from on stderr (warnings are still printed)]' \
'--quiet[No summary of --weights-from on stderr (warnings are still printed)]' \
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
