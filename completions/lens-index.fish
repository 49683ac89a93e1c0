complete -c lens-index -l label -d 'Label for the objects under the roots that follow: 1 (lens), 0 (non-lens), or "name" to take it from the file name again (the default)' -r
complete -c lens-index -s o -l output -d 'Write the index to FILE (whole or not at all) instead of stdout' -r -F
complete -c lens-index -l problems -d 'Also write every problem to FILE as CSV (kind,id,path,detail)' -r -F
complete -c lens-index -l max-problems -d 'Fail (exit 2, no index written) when there are more than N problems' -r
complete -c lens-index -s q -l quiet -d 'Print only the summary, not each problem'
complete -c lens-index -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-index -s V -l version -d 'Print version'
