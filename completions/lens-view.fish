complete -c lens-view -l pack -d 'The pack holding the images' -r -F
complete -c lens-view -l scores -d 'Scores: id,pred or id,logit[,...] (`-` for stdin)' -r -F
complete -c lens-view -s n -l top -d 'Show the N highest scores, best first (ties by id)' -r
complete -c lens-view -l ids -d 'Show these ids, in this order' -r
complete -c lens-view -l ids-file -d 'Show the ids of FILE, in its order: a CSV with an id column (a submission, a candidate list), or one id per line (`-` for stdin)' -r -F
complete -c lens-view -l sample -d 'Show N objects drawn at random (seeded), in pack order' -r
complete -c lens-view -l label -d 'With --sample: draw only lenses (1) or only non-lenses (0), by the pack\'s labels' -r
complete -c lens-view -l seed -d 'Seed of --sample' -r
complete -c lens-view -l band -d 'Show one band in grey instead of the i,r,g colour composite' -r -f -a "g\t''
r\t''
i\t''
z\t''
y\t''"
complete -c lens-view -l cols -d 'Tiles per row' -r
complete -c lens-view -l scale -d 'Pixel upsampling: each image pixel is drawn as KxK screen pixels' -r
complete -c lens-view -s Q -l q -d 'Lupton\'s Q: how soon the stretch turns from linear to logarithmic (higher shows more faint structure beside bright cores)' -r
complete -c lens-view -l stretch -d 'Lupton\'s stretch, in sky-noise sigmas: the linear range of the mapping (lower brightens faint features)' -r
complete -c lens-view -l minimum -d 'Black point, in sky-noise sigmas above the sky (a positive value hides the noise)' -r
complete -c lens-view -s o -l output -d 'Write the PNG to FILE (whole or not at all); `-` for stdout' -r -F
complete -c lens-view -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c lens-view -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-view -s V -l version -d 'Print version'
