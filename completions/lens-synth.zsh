#compdef lens-synth

autoload -U is-at-least

_lens-synth() {
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
'-o+[Output directory; created if missing, must be empty]:DIR:_files' \
'--out=[Output directory; created if missing, must be empty]:DIR:_files' \
'-n+[Objects per class\: per training directory, or per label with --blind]:N:_default' \
'--objects=[Objects per class\: per training directory, or per label with --blind]:N:_default' \
'--seed=[Random seed; the same seed gives the same bytes]:SEED:_default' \
'--corrupt=[Damage K of the written files (alternately truncated and with a garbage header), listed in OUT/corrupted.csv, as the real release had]:K:_default' \
'--size=[Cutout side in pixels]:PIXELS:_default' \
'--difficulty=[easy (the default) or hard\: the benchmark of training recipes (see above)]:LEVEL:((easy\:"Bright arcs, companions on 40% of the objects, one seeing/noise domain per source\: learnt in a few epochs"
hard\:"Fainter and smaller arcs, companions on half the objects, ring and spiral galaxies on half the non-lenses, a good and a poor seeing/noise domain (a quarter poor in training, 70% in the blind set)"))' \
'-j+[Worker threads (default\: all cores)]:N:_default' \
'--threads=[Worker threads (default\: all cores)]:N:_default' \
'--blind[Write the blind test layout (image in the primary HDU, no label in the name) and OUT/labels.csv]' \
'-q[No progress output]' \
'--quiet[No progress output]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
}

(( $+functions[_lens-synth_commands] )) ||
_lens-synth_commands() {
    local commands; commands=()
    _describe -t commands 'lens-synth commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-synth" ]; then
    _lens-synth "$@"
else
    compdef _lens-synth lens-synth
fi
