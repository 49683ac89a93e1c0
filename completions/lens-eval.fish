complete -c lens-eval -l pred -d 'The predictions: id,pred, id,logit, both, or a challenge submission (id,preds,...)' -r -F
complete -c lens-eval -l truth -d 'The labels: a CSV with id,label[,source], or a pack (default: the label column of --pred)' -r -F
complete -c lens-eval -l threshold -d 'Threshold for accuracy, precision, recall and F1 (default: 0.5 for pred, 0 for logit)' -r
complete -c lens-eval -l roc -d 'Write the ROC curve (fpr,tpr,threshold) to FILE' -r -F
complete -c lens-eval -l plot -d 'Draw the ROC curves (all objects and each source) with a log FPR axis, and the reliability diagram, into FILE (PNG)' -r -F
complete -c lens-eval -l pick-threshold -d 'Choose a threshold by RULE (fpr=X, tpr=X, f1 or fraction=X) and print it as JSON instead of the metrics' -r
complete -c lens-eval -l fit-calibration -d 'Fit a calibration (a temperature) on the logits and write it to FILE as JSON, for lens-ensemble --calibration' -r -F
complete -c lens-eval -l platt -d 'With --fit-calibration: fit a bias as well as the temperature (Platt scaling)'
complete -c lens-eval -l allow-missing -d 'Evaluate the ids present in both files instead of failing when they differ'
complete -c lens-eval -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lens-eval -s V -l version -d 'Print version'
