complete -c lens-ensemble -l weights -d 'One weight per model, comma-separated (default: equal)' -r
complete -c lens-ensemble -l threshold -d 'Add a column label = 1 if pred >= T, else 0, for challenge-style binary submissions' -r
complete -c lens-ensemble -s o -l output -d 'Write to FILE (whole or not at all) instead of stdout' -r -F
complete -c lens-ensemble -l allow-missing -d 'Average over the models that score an id instead of failing when id sets differ'
complete -c lens-ensemble -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-ensemble -s V -l version -d 'Print version'
