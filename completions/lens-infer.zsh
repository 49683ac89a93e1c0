#compdef lens-infer

autoload -U is-at-least

_lens-infer() {
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
'--run=[The run directory (lens-train'\''s --out)]:DIR:_files' \
'--pack=[The pack to score]:PACK:_files' \
'-o+[Write the logits to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--output=[Write the logits to FILE (whole or not at all) instead of stdout]:FILE:_files' \
'--tta=[Test-time augmentation\: d4 (8 views), flips (3) or none]:TTA:_default' \
'--batch-size=[Objects per batch; each view of a batch is one call of the model]:BATCH_SIZE:_default' \
'--shard=[Score only rows with row % N == K (K from 0)]:K/N:_default' \
'--precision=[auto (time each candidate on this machine at start-up and take the fastest; see AUTO SETTINGS), fp32, bf16 (autocast) or fp16 (autocast; training adds dynamic loss scaling)]:PRECISION:_default' \
'--memory-format=[auto (timed with --precision), contiguous (NCHW) or channels-last]:FORMAT:_default' \
'--device=[auto (the first GPU if any), cpu, cuda or cuda\:N]:DEVICE:_default' \
'-j+[CPU threads for libtorch and batch gathering (default\: all cores)]:N:_default' \
'--threads=[CPU threads for libtorch and batch gathering (default\: all cores)]:N:_default' \
'--per-view[Add one logit column per view]' \
'(--memory-format)--no-channels-last[The same as --memory-format contiguous]' \
'--no-autotune-cache[Time the auto settings now, without reading or writing the cache of earlier choices (\$XDG_CACHE_HOME/lensfind/autotune.json, or ~/.cache/lensfind/autotune.json)]' \
'-q[No progress output]' \
'--quiet[No progress output]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
}

(( $+functions[_lens-infer_commands] )) ||
_lens-infer_commands() {
    local commands; commands=()
    _describe -t commands 'lens-infer commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-infer" ]; then
    _lens-infer "$@"
else
    compdef _lens-infer lens-infer
fi
