#compdef lens-pack

autoload -U is-at-least

_lens-pack() {
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
'(--verify)-o+[The pack directory to write (conventionally NAME.pack)]:DIR:_files' \
'(--verify)--output=[The pack directory to write (conventionally NAME.pack)]:DIR:_files' \
'--verify=[Check an existing pack against its checksums instead of writing one; names damaged rows]:PACK:_files' \
'--size=[Expected image size\: S for SxS, or HxW. Other shapes are rejected]:S|HxW:_default' \
'--standardize=[Standardisation of each object\: cube (one mean/std over 5xHxW), band (per band), none]:STANDARDIZE:((cube\:"One mean and one population std over the object'\''s whole 5xHxW cube (the reference'\''s way)"
band\:"A mean and std per band"
noise\:"Per band\: its median subtracted, in units of its noise (1.4826 x the median absolute deviation from the median, a sigma that the object'\''s own light hardly moves), through asinh\: the noise stays linear around +-1 and bright light is compressed logarithmically, so a faint arc keeps its contrast beside a bright deflector and each band counts by its signal-to-noise (after Lanusse et al. 2018, CMU DeepLens)"
none\:"Raw values (only NaN/Inf replaced)"))' \
'--dtype=[Stored element type\: f32, or f16 to halve the size]:f32|f16:_default' \
'--max-rejected=[Fail (exit 2, no pack written) when more than N objects are rejected]:N:_default' \
'--max-nonfinite=[Reject an object when more than this fraction (0-1) of its pixels are NaN or Inf; by default such pixels are set to 0 and the object is kept]:FRACTION:_default' \
'-j+[Worker threads (default\: all cores)]:N:_default' \
'--threads=[Worker threads (default\: all cores)]:N:_default' \
'--chunk=[Objects loaded in parallel per step (bounds memory\: about N x 34 kB at 41x41)]:N:_default' \
'-q[No progress output and no per-object warnings; the final summary only]' \
'--quiet[No progress output and no per-object warnings; the final summary only]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
'::index -- The index CSV (id,label,source,g,r,i,z,y); - or nothing reads stdin:_files' \
&& ret=0
}

(( $+functions[_lens-pack_commands] )) ||
_lens-pack_commands() {
    local commands; commands=()
    _describe -t commands 'lens-pack commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-pack" ]; then
    _lens-pack "$@"
else
    compdef _lens-pack lens-pack
fi
