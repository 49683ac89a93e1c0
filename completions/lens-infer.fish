complete -c lens-infer -l run -d 'The run directory (lens-train\'s --out)' -r -F
complete -c lens-infer -l pack -d 'The pack to score' -r -F
complete -c lens-infer -s o -l output -d 'Write the logits to FILE (whole or not at all) instead of stdout' -r -F
complete -c lens-infer -l tta -d 'Test-time augmentation: d4 (8 views), flips (3) or none' -r
complete -c lens-infer -l batch-size -d 'Objects per batch; each view of a batch is one call of the model' -r
complete -c lens-infer -l shard -d 'Score only rows with row % N == K (K from 0)' -r
complete -c lens-infer -l precision -d 'auto (time each candidate on this machine at start-up and take the fastest; see AUTO SETTINGS), fp32, bf16 (autocast) or fp16 (autocast; training adds dynamic loss scaling)' -r
complete -c lens-infer -l memory-format -d 'auto (timed with --precision), contiguous (NCHW) or channels-last' -r
complete -c lens-infer -l device -d 'auto (the first GPU if any), cpu, cuda or cuda:N' -r
complete -c lens-infer -s j -l threads -d 'CPU threads for libtorch and batch gathering (default: all cores)' -r
complete -c lens-infer -l per-view -d 'Add one logit column per view'
complete -c lens-infer -l no-channels-last -d 'The same as --memory-format contiguous'
complete -c lens-infer -l no-autotune-cache -d 'Time the auto settings now, without reading or writing the cache of earlier choices ($XDG_CACHE_HOME/lensfind/autotune.json, or ~/.cache/lensfind/autotune.json)'
complete -c lens-infer -s q -l quiet -d 'No progress output'
complete -c lens-infer -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-infer -s V -l version -d 'Print version'
