#compdef lens-view

autoload -U is-at-least

_lens-view() {
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
'--pack=[The pack holding the images]:PACK:_files' \
'--scores=[Scores\: id,pred or id,logit\[,...\] (\`-\` for stdin)]:FILE:_files' \
'-n+[Show the N highest scores, best first (ties by id)]:N:_default' \
'--top=[Show the N highest scores, best first (ties by id)]:N:_default' \
'*--ids=[Show these ids, in this order]:ID,...:_default' \
'--ids-file=[Show the ids of FILE, in its order\: a CSV with an id column (a submission, a candidate list), or one id per line (\`-\` for stdin)]:FILE:_files' \
'--sample=[Show N objects drawn at random (seeded), in pack order]:N:_default' \
'--label=[With --sample\: draw only lenses (1) or only non-lenses (0), by the pack'\''s labels]:LABEL:_default' \
'--seed=[Seed of --sample]:N:_default' \
'--band=[Show one band in grey instead of the i,r,g colour composite]:BAND:(g r i z y)' \
'--cols=[Tiles per row]:N:_default' \
'--scale=[Pixel upsampling\: each image pixel is drawn as KxK screen pixels]:K:_default' \
'-Q+[Lupton'\''s Q\: how soon the stretch turns from linear to logarithmic (higher shows more faint structure beside bright cores)]:Q:_default' \
'--q=[Lupton'\''s Q\: how soon the stretch turns from linear to logarithmic (higher shows more faint structure beside bright cores)]:Q:_default' \
'--stretch=[Lupton'\''s stretch, in sky-noise sigmas\: the linear range of the mapping (lower brightens faint features)]:SIGMA:_default' \
'--minimum=[Black point, in sky-noise sigmas above the sky (a positive value hides the noise)]:SIGMA:_default' \
'-o+[Write the PNG to FILE (whole or not at all); \`-\` for stdout]:FILE:_files' \
'--output=[Write the PNG to FILE (whole or not at all); \`-\` for stdout]:FILE:_files' \
'-q[Print nothing on stderr but errors]' \
'--quiet[Print nothing on stderr but errors]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
}

(( $+functions[_lens-view_commands] )) ||
_lens-view_commands() {
    local commands; commands=()
    _describe -t commands 'lens-view commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-view" ]; then
    _lens-view "$@"
else
    compdef _lens-view lens-view
fi
