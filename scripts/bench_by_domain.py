"""Test figures of the hard synthetic benchmark split by seeing/noise domain (good, poor) and by look-alike, for
runs of scripts/bench-recipes.sh: where a lever gains or loses. Each domain's AUC and TPR at FPR 1e-2 are computed
on its own objects (its lenses against its non-lenses).

    usage: .venv/bin/python scripts/bench_by_domain.py PARAMS.csv RUN/blind.TTA.logits.csv [...]
    PARAMS.csv: the blind set's params.csv (lens-synth writes it: id, label, domain, lookalike, ...)
"""
import csv
import sys


def auc(pos, neg):
    # Mann-Whitney with ties counted half: rank the pooled scores.
    pooled = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # ranks i+1..j, their mean
        rank_sum += mid * sum(1 for k in range(i, j) if pooled[k][1] == 1)
        i = j
    n1, n0 = len(pos), len(neg)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def tpr_at(pos, neg, fpr):
    # The threshold above all but floor(fpr x negatives) of the non-lenses; lenses strictly above it count.
    neg = sorted(neg, reverse=True)
    allowed = int(fpr * len(neg))
    thr = neg[allowed] if allowed < len(neg) else float("-inf")
    return sum(1 for s in pos if s > thr) / len(pos)


def main():
    params = {r["id"]: r for r in csv.DictReader(open(sys.argv[1]))}
    print("| logits | domain | lenses | non-lenses | AUC | TPR@FPR 1e-2 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sys.argv[2:]:
        scores = {r["id"]: float(r["logit"]) for r in csv.DictReader(open(path))}
        for domain in ["good", "poor"]:
            pos = [s for i, s in scores.items() if params[i]["domain"] == domain and params[i]["label"] == "1"]
            neg = [s for i, s in scores.items() if params[i]["domain"] == domain and params[i]["label"] == "0"]
            print(f"| {path} | {domain} | {len(pos)} | {len(neg)} | {auc(pos, neg):.4f} | {tpr_at(pos, neg, 1e-2):.3f} |")


if __name__ == "__main__":
    main()
