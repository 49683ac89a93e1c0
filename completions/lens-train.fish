complete -c lens-train -l pack -d 'The training pack (lens-pack\'s output)' -r -F
complete -c lens-train -l val-pack -d 'A separate validation pack; without it --val-split of the training pack is held out' -r -F
complete -c lens-train -s o -l out -d 'The run directory to create (or, with --resume or --auto-resume, to continue)' -r -F
complete -c lens-train -l model -d 'Model name (see --list-models)' -r
complete -c lens-train -l input-size -d 'ViT input side in pixels (the 41x41 images are resized on the device, bilinear); default 224' -r
complete -c lens-train -l recipe -r -f -a "reference\t'The reference\'s recipe (its Lightning script): what suits fine-tuning ImageNet weights'
scratch\t'From scratch: a 20x higher learning rate with a warm-up, no decay on norms and biases, drop path'
finetune\t'From --pretrained weights: the reference\'s rate scaled with the batch, a short warm-up, drop path'
robust\t'scratch, with half the training images shown under worse observing conditions (--degrade) and the labels smoothed by 0.2 (--label-smoothing): for the final model, which must hold up on fields observed otherwise than its training set and is judged at low false-positive rates'"
complete -c lens-train -l epochs -d 'Epochs (default: the recipe\'s)' -r
complete -c lens-train -l batch-size -r
complete -c lens-train -l lr -d 'Peak learning rate (AdamW), used as given (default: the recipe\'s, scaled with the global batch)' -r
complete -c lens-train -l weight-decay -d 'AdamW weight decay (default: the recipe\'s)' -r
complete -c lens-train -l warmup-steps -d 'Linear warm-up steps before the cosine schedule (default: the recipe\'s)' -r
complete -c lens-train -l grad-clip -d 'Clip the global gradient norm to this value' -r
complete -c lens-train -l drop-path -d 'Stochastic depth rate of the last block, timm\'s drop_path_rate (default: the recipe\'s)' -r
complete -c lens-train -l ema-half-life -d 'Keep a moving average of the weights with this half-life in epochs (0: none; default: the recipe\'s). It is validated after every epoch beside the weights themselves, and model.safetensors holds whichever of the two validated better (metrics.csv has both; the ema_ columns are the average\'s)' -r
complete -c lens-train -l degrade -d 'The chance (0 to 1) that a training image is shown under worse observing conditions: blurred by a Gaussian of up to 1.5 pixels (broader seeing) and its noise raised up to 2x (a shallower field), each band\'s noise measured on the image itself. For a model that must hold up on fields observed under other conditions than its training set\'s. 0: never; default: the recipe\'s. Batches are then gathered on the host (never --data-on-device always)' -r
complete -c lens-train -l label-smoothing -d 'Smooth the training labels by EPSILON (0 to below 1): a lens is learnt as 1 - EPSILON/2 and a non-lens as EPSILON/2, so that images already ranked right stop pushing their scores further out and the rest of the training counts more. 0: the labels as they are; default: the recipe\'s (robust: 0.2). The training loss printed and in metrics.csv is then against the smoothed labels; the validation loss is not' -r
complete -c lens-train -l pos-weight -d 'Weight of the positive class in the loss (BCE pos_weight)' -r
complete -c lens-train -l focal-gamma -d 'Focal loss (Lin et al. 2017): each object\'s BCE is weighted by (1 - p_t)^GAMMA, p_t the probability the model gives its true class, so that objects already ranked right count less and the hard ones (lookalikes, faint arcs) more. 0 or absent: plain BCE. The training loss printed and in metrics.csv is then the focal loss; the validation loss stays BCE' -r
complete -c lens-train -l seed -r
complete -c lens-train -l split-seed -d 'Seed of the validation split, apart from --seed so that the models of one ensemble, trained with different seeds, hold out the same objects (lens-ensemble then ensembles their validation predictions). Recorded in config.json; runs made before this option drew their split from --seed and keep doing so' -r
complete -c lens-train -l val-split -d 'Fraction of each (label, source) group held out for validation when there is no --val-pack' -r
complete -c lens-train -l patience -d 'Stop after this many epochs without a better validation AUC' -r
complete -c lens-train -l pretrained -d 'Start from a timm ImageNet checkpoint (safetensors): first conv adapted to 5 channels, fresh head' -r -F
complete -c lens-train -l checkpoint-every -d 'Also write a checkpoint every N steps (one is always written after each epoch)' -r
complete -c lens-train -l time-limit -d 'Stop at the end of the epoch after which another one would pass this many seconds of training (counted from the start of this process), with its checkpoint written (exit 0; --resume continues the run). For comparisons at equal wall-clock budget (scripts/bench-recipes.sh) and batch jobs\' time limits' -r
complete -c lens-train -l data-on-device -d 'Where batches come from: auto (the default) puts the whole pack (and --val-pack) on a GPU when it takes at most a quarter of the GPU\'s free memory, and gathers batches from the mapped file on a CPU; always (also the bare flag) puts it on the device; never gathers from the file. Changes the speed only, never the result' -r -f -a "auto\t''
always\t''
never\t''"
complete -c lens-train -l precision -d 'auto (time each candidate on this machine at start-up and take the fastest; see AUTO SETTINGS), fp32, bf16 (autocast) or fp16 (autocast; training adds dynamic loss scaling)' -r
complete -c lens-train -l memory-format -d 'auto (timed with --precision), contiguous (NCHW) or channels-last' -r
complete -c lens-train -l device -d 'auto (the first GPU if any), cpu, cuda or cuda:N' -r
complete -c lens-train -s j -l threads -d 'CPU threads for libtorch and batch gathering (default: all cores)' -r
complete -c lens-train -l dist-backend -d 'Collectives between processes: auto (NCCL on GPUs, Gloo on CPUs), gloo or nccl' -r -f -a "auto\t''
gloo\t''
nccl\t''"
complete -c lens-train -l dist-timeout -d 'Seconds a process waits for the others (rendezvous, each collective) before it stops with an error' -r
complete -c lens-train -l list-models -d 'List the models (name, family, input size, parameters) and exit'
complete -c lens-train -l resume -d 'Continue the run in --out from its checkpoint, with the settings of its config.json. Only where and how it runs may be given anew: --device, --memory-format, --data-on-device, --checkpoint-every, --time-limit, --threads and the distributed options'
complete -c lens-train -l auto-resume -d 'Start the run, or continue it if --out already holds it: from its checkpoint, or from the first step when it has none yet (exact: all randomness comes from the seed); a complete run is left as it is (exit 0). The settings must be config.json\'s, else an error names those that differ: --device and --checkpoint-every may change, and --precision auto and --memory-format auto match what the run chose. For a command line that is run again as it is: batch scripts, requeued jobs, torchrun --max-restarts. Every process must see the same --out'
complete -c lens-train -l no-decay-norm-bias -d 'No weight decay on norms, biases, layer scales, position embeddings and the class token (default: the recipe\'s)'
complete -c lens-train -l decay-norm-bias -d 'Weight decay on every parameter, norms and biases included, whatever the recipe says'
complete -c lens-train -l no-channels-last -d 'The same as --memory-format contiguous'
complete -c lens-train -l no-autotune-cache -d 'Time the auto settings now, without reading or writing the cache of earlier choices ($XDG_CACHE_HOME/lensfind/autotune.json, or ~/.cache/lensfind/autotune.json)'
complete -c lens-train -s q -l quiet -d 'No progress bar or log lines; epoch summaries only'
complete -c lens-train -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-train -s V -l version -d 'Print version'
