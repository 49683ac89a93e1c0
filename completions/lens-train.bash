_lens__train() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="lens__train"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        lens__train)
            opts="-o -j -q -h -V --list-models --pack --val-pack --out --resume --auto-resume --model --input-size --recipe --epochs --batch-size --lr --weight-decay --warmup-steps --grad-clip --drop-path --no-decay-norm-bias --decay-norm-bias --ema-half-life --degrade --label-smoothing --pos-weight --focal-gamma --seed --split-seed --val-split --patience --pretrained --checkpoint-every --time-limit --data-on-device --precision --memory-format --no-channels-last --no-autotune-cache --device --threads --dist-backend --dist-timeout --quiet --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --pack)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --val-pack)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --model)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --recipe)
                    COMPREPLY=($(compgen -W "reference scratch finetune robust" -- "${cur}"))
                    return 0
                    ;;
                --epochs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --batch-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --weight-decay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --warmup-steps)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --grad-clip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --drop-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ema-half-life)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --degrade)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --label-smoothing)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pos-weight)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --focal-gamma)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --seed)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --split-seed)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --val-split)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --patience)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pretrained)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --checkpoint-every)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --time-limit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --data-on-device)
                    COMPREPLY=($(compgen -W "auto always never" -- "${cur}"))
                    return 0
                    ;;
                --precision)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --memory-format)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --device)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --threads)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -j)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dist-backend)
                    COMPREPLY=($(compgen -W "auto gloo nccl" -- "${cur}"))
                    return 0
                    ;;
                --dist-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _lens__train -o nosort -o bashdefault -o default lens-train
else
    complete -F _lens__train -o bashdefault -o default lens-train
fi
