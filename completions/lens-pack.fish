complete -c lens-pack -s o -l output -d 'The pack directory to write (conventionally NAME.pack)' -r -F
complete -c lens-pack -l verify -d 'Check an existing pack against its checksums instead of writing one; names damaged rows' -r -F
complete -c lens-pack -l size -d 'Expected image size: S for SxS, or HxW. Other shapes are rejected' -r
complete -c lens-pack -l standardize -d 'Standardisation of each object: cube (one mean/std over 5xHxW), band (per band), none' -r -f -a "cube\t'One mean and one population std over the object\'s whole 5xHxW cube (the reference\'s way)'
band\t'A mean and std per band'
noise\t'Per band: its median subtracted, in units of its noise (1.4826 x the median absolute deviation from the median, a sigma that the object\'s own light hardly moves), through asinh: the noise stays linear around +-1 and bright light is compressed logarithmically, so a faint arc keeps its contrast beside a bright deflector and each band counts by its signal-to-noise (after Lanusse et al. 2018, CMU DeepLens)'
none\t'Raw values (only NaN/Inf replaced)'"
complete -c lens-pack -l dtype -d 'Stored element type: f32, or f16 to halve the size' -r
complete -c lens-pack -l max-rejected -d 'Fail (exit 2, no pack written) when more than N objects are rejected' -r
complete -c lens-pack -l max-nonfinite -d 'Reject an object when more than this fraction (0-1) of its pixels are NaN or Inf; by default such pixels are set to 0 and the object is kept' -r
complete -c lens-pack -s j -l threads -d 'Worker threads (default: all cores)' -r
complete -c lens-pack -l chunk -d 'Objects loaded in parallel per step (bounds memory: about N x 34 kB at 41x41)' -r
complete -c lens-pack -s q -l quiet -d 'No progress output and no per-object warnings; the final summary only'
complete -c lens-pack -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-pack -s V -l version -d 'Print version'
