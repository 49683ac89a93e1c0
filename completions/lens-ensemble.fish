complete -c lens-ensemble -l weights -d 'One weight per model, comma-separated (default: equal)' -r
complete -c lens-ensemble -l weights-from -d 'Choose the weights on validation: one validation predictions file per model (RUN/val_predictions.csv, in the order of the models), on a shared split. The weights (non-negative, summing to 1) maximise validation AUC or minimise log-loss (--weights-metric); equal weights win unless something does strictly better, so the choice is never worse than equal weights on validation. Prints the weights, both scores and a warning for each member whose validation AUC is more than 0.01 below the best member\'s' -r
complete -c lens-ensemble -l weights-metric -d 'What --weights-from optimises: auc or log-loss' -r -f -a "auc\t''
log-loss\t''"
complete -c lens-ensemble -l threshold -d 'Call objects lenses: T, a probability (pred >= T, after --calibration), or FILE, a threshold chosen by lens-eval --pick-threshold (a threshold on logits applies to the ensemble\'s mean logit before calibration, so a calibration never changes the decisions; pick it on uncalibrated validation scores). Adds a column label (called with validation predictions), or sets preds with --format challenge' -r
complete -c lens-ensemble -l calibration -d 'Calibrate the probabilities with FILE (lens-eval --fit-calibration): pred = sigmoid(mean logit / T + b). The ranking is unchanged' -r -F
complete -c lens-ensemble -l format -d 'Output format: scores (id,pred) or challenge (the challenge\'s 41 columns; needs --threshold)' -r -f -a "scores\t'id,pred (with validation predictions: id,label,source,logit,pred)'
challenge\t'The challenge\'s 41 columns: id, preds (1/0 at the threshold), -999 in the others'"
complete -c lens-ensemble -s o -l output -d 'Write to FILE (whole or not at all) instead of stdout' -r -F
complete -c lens-ensemble -l allow-missing -d 'Average over the models that score an id instead of failing when id sets differ'
complete -c lens-ensemble -s q -l quiet -d 'No summary of --weights-from on stderr (warnings are still printed)'
complete -c lens-ensemble -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-ensemble -s V -l version -d 'Print version'
