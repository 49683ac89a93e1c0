#compdef lens-train

autoload -U is-at-least

_lens-train() {
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
'--pack=[The training pack (lens-pack'\''s output)]:PACK:_files' \
'--val-pack=[A separate validation pack; without it --val-split of the training pack is held out]:PACK:_files' \
'-o+[The run directory to create (or, with --resume or --auto-resume, to continue)]:DIR:_files' \
'--out=[The run directory to create (or, with --resume or --auto-resume, to continue)]:DIR:_files' \
'--model=[Model name (see --list-models)]:MODEL:_default' \
'--input-size=[ViT input side in pixels (the 41x41 images are resized on the device, bilinear); default 224]:PIXELS:_default' \
'--recipe=[]:RECIPE:((reference\:"The reference'\''s recipe (its Lightning script)\: what suits fine-tuning ImageNet weights"
scratch\:"From scratch\: a 20x higher learning rate with a warm-up, no decay on norms and biases, drop path"
finetune\:"From --pretrained weights\: the reference'\''s rate scaled with the batch, a short warm-up, drop path"
robust\:"scratch, with half the training images shown under worse observing conditions (--degrade) and the labels smoothed by 0.2 (--label-smoothing)\: for the final model, which must hold up on fields observed otherwise than its training set and is judged at low false-positive rates"))' \
'--epochs=[Epochs (default\: the recipe'\''s)]:N:_default' \
'--batch-size=[]:BATCH_SIZE:_default' \
'--lr=[Peak learning rate (AdamW), used as given (default\: the recipe'\''s, scaled with the global batch)]:LR:_default' \
'--weight-decay=[AdamW weight decay (default\: the recipe'\''s)]:WD:_default' \
'--warmup-steps=[Linear warm-up steps before the cosine schedule (default\: the recipe'\''s)]:STEPS:_default' \
'--grad-clip=[Clip the global gradient norm to this value]:NORM:_default' \
'--drop-path=[Stochastic depth rate of the last block, timm'\''s drop_path_rate (default\: the recipe'\''s)]:RATE:_default' \
'--ema-half-life=[Keep a moving average of the weights with this half-life in epochs (0\: none; default\: the recipe'\''s). It is validated after every epoch beside the weights themselves, and model.safetensors holds whichever of the two validated better (metrics.csv has both; the ema_ columns are the average'\''s)]:EPOCHS:_default' \
'--degrade=[The chance (0 to 1) that a training image is shown under worse observing conditions\: blurred by a Gaussian of up to 1.5 pixels (broader seeing) and its noise raised up to 2x (a shallower field), each band'\''s noise measured on the image itself. For a model that must hold up on fields observed under other conditions than its training set'\''s. 0\: never; default\: the recipe'\''s. Batches are then gathered on the host (never --data-on-device always)]:CHANCE:_default' \
'--label-smoothing=[Smooth the training labels by EPSILON (0 to below 1)\: a lens is learnt as 1 - EPSILON/2 and a non-lens as EPSILON/2, so that images already ranked right stop pushing their scores further out and the rest of the training counts more. 0\: the labels as they are; default\: the recipe'\''s (robust\: 0.2). The training loss printed and in metrics.csv is then against the smoothed labels; the validation loss is not]:EPSILON:_default' \
'--pos-weight=[Weight of the positive class in the loss (BCE pos_weight)]:W:_default' \
'--focal-gamma=[Focal loss (Lin et al. 2017)\: each object'\''s BCE is weighted by (1 - p_t)^GAMMA, p_t the probability the model gives its true class, so that objects already ranked right count less and the hard ones (lookalikes, faint arcs) more. 0 or absent\: plain BCE. The training loss printed and in metrics.csv is then the focal loss; the validation loss stays BCE]:GAMMA:_default' \
'--seed=[]:SEED:_default' \
'--split-seed=[Seed of the validation split, apart from --seed so that the models of one ensemble, trained with different seeds, hold out the same objects (lens-ensemble then ensembles their validation predictions). Recorded in config.json; runs made before this option drew their split from --seed and keep doing so]:SEED:_default' \
'--val-split=[Fraction of each (label, source) group held out for validation when there is no --val-pack]:VAL_SPLIT:_default' \
'--patience=[Stop after this many epochs without a better validation AUC]:PATIENCE:_default' \
'--pretrained=[Start from a timm ImageNet checkpoint (safetensors)\: first conv adapted to 5 channels, fresh head]:FILE:_files' \
'--checkpoint-every=[Also write a checkpoint every N steps (one is always written after each epoch)]:N:_default' \
'--time-limit=[Stop at the end of the epoch after which another one would pass this many seconds of training (counted from the start of this process), with its checkpoint written (exit 0; --resume continues the run). For comparisons at equal wall-clock budget (scripts/bench-recipes.sh) and batch jobs'\'' time limits]:SECONDS:_default' \
'--data-on-device=[Where batches come from\: auto (the default) puts the whole pack (and --val-pack) on a GPU when it takes at most a quarter of the GPU'\''s free memory, and gathers batches from the mapped file on a CPU; always (also the bare flag) puts it on the device; never gathers from the file. Changes the speed only, never the result]::WHEN:(auto always never)' \
'--precision=[auto (time each candidate on this machine at start-up and take the fastest; see AUTO SETTINGS), fp32, bf16 (autocast) or fp16 (autocast; training adds dynamic loss scaling)]:PRECISION:_default' \
'--memory-format=[auto (timed with --precision), contiguous (NCHW) or channels-last]:FORMAT:_default' \
'--device=[auto (the first GPU if any), cpu, cuda or cuda\:N]:DEVICE:_default' \
'-j+[CPU threads for libtorch and batch gathering (default\: all cores)]:N:_default' \
'--threads=[CPU threads for libtorch and batch gathering (default\: all cores)]:N:_default' \
'--dist-backend=[Collectives between processes\: auto (NCCL on GPUs, Gloo on CPUs), gloo or nccl]:BACKEND:(auto gloo nccl)' \
'--dist-timeout=[Seconds a process waits for the others (rendezvous, each collective) before it stops with an error]:SECONDS:_default' \
'--list-models[List the models (name, family, input size, parameters) and exit]' \
'--resume[Continue the run in --out from its checkpoint, with the settings of its config.json. Only where and how it runs may be given anew\: --device, --memory-format, --data-on-device, --checkpoint-every, --time-limit, --threads and the distributed options]' \
'(--resume)--auto-resume[Start the run, or continue it if --out already holds it\: from its checkpoint, or from the first step when it has none yet (exact\: all randomness comes from the seed); a complete run is left as it is (exit 0). The settings must be config.json'\''s, else an error names those that differ\: --device and --checkpoint-every may change, and --precision auto and --memory-format auto match what the run chose. For a command line that is run again as it is\: batch scripts, requeued jobs, torchrun --max-restarts. Every process must see the same --out]' \
'--no-decay-norm-bias[No weight decay on norms, biases, layer scales, position embeddings and the class token (default\: the recipe'\''s)]' \
'(--no-decay-norm-bias)--decay-norm-bias[Weight decay on every parameter, norms and biases included, whatever the recipe says]' \
'(--memory-format)--no-channels-last[The same as --memory-format contiguous]' \
'--no-autotune-cache[Time the auto settings now, without reading or writing the cache of earlier choices (\$XDG_CACHE_HOME/lensfind/autotune.json, or ~/.cache/lensfind/autotune.json)]' \
'-q[No progress bar or log lines; epoch summaries only]' \
'--quiet[No progress bar or log lines; epoch summaries only]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
}

(( $+functions[_lens-train_commands] )) ||
_lens-train_commands() {
    local commands; commands=()
    _describe -t commands 'lens-train commands' commands "$@"
}

if [ "$funcstack[1]" = "_lens-train" ]; then
    _lens-train "$@"
else
    compdef _lens-train lens-train
fi
