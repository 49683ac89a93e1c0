complete -c lens-synth -s o -l out -d 'Output directory; created if missing, must be empty' -r -F
complete -c lens-synth -s n -l objects -d 'Objects per class: per training directory, or per label with --blind' -r
complete -c lens-synth -l seed -d 'Random seed; the same seed gives the same bytes' -r
complete -c lens-synth -l corrupt -d 'Damage K of the written files (alternately truncated and with a garbage header), listed in OUT/corrupted.csv, as the real release had' -r
complete -c lens-synth -l size -d 'Cutout side in pixels' -r
complete -c lens-synth -l difficulty -d 'easy (the default) or hard: the benchmark of training recipes (see above)' -r -f -a "easy\t'Bright arcs, companions on 40% of the objects, one seeing/noise domain per source: learnt in a few epochs'
hard\t'Fainter and smaller arcs, companions on half the objects, ring and spiral galaxies on half the non-lenses, a good and a poor seeing/noise domain (a quarter poor in training, 70% in the blind set)'"
complete -c lens-synth -s j -l threads -d 'Worker threads (default: all cores)' -r
complete -c lens-synth -l blind -d 'Write the blind test layout (image in the primary HDU, no label in the name) and OUT/labels.csv'
complete -c lens-synth -s q -l quiet -d 'No progress output'
complete -c lens-synth -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-synth -s V -l version -d 'Print version'
