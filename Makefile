# lensfind: the front door. `make demo` runs the main job on built-in synthetic data, `make test` runs every test.
# Both install what they need first (scripts/setup.sh: apt packages and the project's .venv), quickly when it is
# already there.

CARGO   ?= cargo
PREFIX  ?= /usr/local
BIN     := target/release
DEMO    := demo
OBJECTS ?= 500
SEED    ?= 1
EPOCHS  ?= 5
OPERATING_POINT ?= fpr=1e-2

# One crate per tool in tools/: the list is that directory (xtask and the tests read it too).
TOOLS := $(sort $(notdir $(wildcard tools/lens-*)))

# libtorch comes from the torch wheel in .venv (tch's build finds it through Python).
export VIRTUAL_ENV := $(CURDIR)/.venv
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1

.PHONY: all setup build demo test lint bench man install clean

all: build

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --release --bins

# The whole pipeline on synthetic data: synthesise a challenge-format training set (with two damaged files, as
# the real release had) and a blind test set, index and pack both, train two small models, score the blind set
# with test-time augmentation, ensemble the two, evaluate against the blind labels, and draw the best candidates;
# then ensemble the two runs' validation predictions (one split: --split-seed), pick the operating point there and
# write the challenge-format submission at it, with its realised TPR and FPR on the blind set.
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/lens-synth --out $(DEMO)/train --objects $(OBJECTS) --seed $(SEED) --corrupt 2
	$(BIN)/lens-synth --out $(DEMO)/blind --objects $(OBJECTS) --seed $(SEED) --blind
	$(BIN)/lens-index $(DEMO)/train --problems $(DEMO)/train.problems.csv -o $(DEMO)/train.index.csv
	$(BIN)/lens-index $(DEMO)/blind -o $(DEMO)/blind.index.csv
	$(BIN)/lens-pack $(DEMO)/train.index.csv -o $(DEMO)/train.pack
	$(BIN)/lens-pack $(DEMO)/blind.index.csv -o $(DEMO)/blind.pack
	$(BIN)/lens-pack --verify $(DEMO)/train.pack
	$(BIN)/lens-pack --verify $(DEMO)/blind.pack
	$(BIN)/lens-train --pack $(DEMO)/train.pack --out $(DEMO)/runs/atto --model convnext_atto \
	  --epochs $(EPOCHS) --batch-size 64 --lr 2e-3 --seed $(SEED) --split-seed 42
	$(BIN)/lens-train --pack $(DEMO)/train.pack --out $(DEMO)/runs/femto --model convnext_femto \
	  --epochs $(EPOCHS) --batch-size 64 --lr 2e-3 --seed $$(( $(SEED) + 1 )) --split-seed 42
	$(BIN)/lens-infer --run $(DEMO)/runs/atto --pack $(DEMO)/blind.pack --tta flips -o $(DEMO)/atto.logits.csv
	$(BIN)/lens-infer --run $(DEMO)/runs/femto --pack $(DEMO)/blind.pack --tta flips -o $(DEMO)/femto.logits.csv
	$(BIN)/lens-ensemble $(DEMO)/atto.logits.csv $(DEMO)/femto.logits.csv -o $(DEMO)/submission.csv
	$(BIN)/lens-eval --pred $(DEMO)/submission.csv --truth $(DEMO)/blind/labels.csv --roc $(DEMO)/roc.csv \
	  --plot $(DEMO)/roc.png \
	  > $(DEMO)/metrics.json
	$(BIN)/lens-view --pack $(DEMO)/blind.pack --scores $(DEMO)/submission.csv --top 36 -o $(DEMO)/candidates.png
	$(BIN)/lens-ensemble $(DEMO)/runs/atto/val_predictions.csv $(DEMO)/runs/femto/val_predictions.csv \
	  -o $(DEMO)/val.ensemble.csv
	$(BIN)/lens-eval --pred $(DEMO)/val.ensemble.csv --pick-threshold $(OPERATING_POINT) > $(DEMO)/threshold.json
	$(BIN)/lens-ensemble $(DEMO)/atto.logits.csv $(DEMO)/femto.logits.csv --threshold $(DEMO)/threshold.json \
	  --format challenge -o $(DEMO)/challenge.csv
	$(BIN)/lens-eval --pred $(DEMO)/challenge.csv --truth $(DEMO)/blind/labels.csv > $(DEMO)/challenge.metrics.json
	@echo
	@echo "demo: what was made under $(DEMO)/:"
	@for p in $(DEMO)/train.pack $(DEMO)/blind.pack; do \
	  printf '  %-18s %s\n' "$$p" "$$(grep -E '"(count|rejected|lenses|nonlenses)"' $$p/pack.json | tr -d ' \n')"; done
	@echo "  set aside:"; tail -n +2 $(DEMO)/train.pack/rejected.csv | sed 's/^/    /'
	@echo "  $(DEMO)/runs/{atto,femto}: metrics.csv, model.safetensors, val_predictions.csv; atto's metrics.csv:"
	@column -s, -t < $(DEMO)/runs/atto/metrics.csv | cut -c1-120 | sed 's/^/    /'
	@echo "  $(DEMO)/submission.csv scored against $(DEMO)/blind/labels.csv ($(DEMO)/metrics.json, roc.csv, roc.png):"
	@grep -E '"(auc|tpr_at_fpr_1e2|tpr0)"' $(DEMO)/metrics.json | head -3 | sed 's/^ */    /'
	@echo "  $(DEMO)/candidates.png: the 36 best-scored blind objects (lens-view), to look at"
	@echo "  $(DEMO)/challenge.csv: the challenge's submission format, at the operating point $(OPERATING_POINT)"
	@echo "    chosen on the two models' shared validation split ($(DEMO)/threshold.json):"
	@grep -E '"(logit|probability|tpr|fpr)"' $(DEMO)/threshold.json | tr -d ' \n' | sed 's/^/    validation: /'; echo
	@echo "    realised on the blind set ($(DEMO)/challenge.metrics.json):"
	@sed -n '/"at_threshold"/,/}/p' $(DEMO)/challenge.metrics.json | grep -E '"(tp|fp|tpr|fpr)"' | tr -d ' \n' \
	  | sed 's/^/    blind: /'; echo

# The whole test suite: unit tests, the end-to-end tests (which run the built tools), and the man-page check.
test: setup
	$(CARGO) build --bins
	$(CARGO) test --workspace

# The lint gate CI runs before the tests: formatting (rustfmt.toml) and clippy with [workspace.lints] (Cargo.toml),
# every warning an error.
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every benchmark of BENCHMARKS.md on the machine at hand, into one report, bench/REPORT.md (scripts/bench-all.sh;
# the training and inference ones use the demo's pack and run, made first when missing). QUICK=1 checks that the
# scripts run, on tiny inputs.
bench: build
	./scripts/bench-all.sh

man:
	$(CARGO) run -q -p xtask -- man

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(addprefix man/,$(addsuffix .1,$(TOOLS))) $(DESTDIR)$(PREFIX)/share/man/man1/
	for t in $(TOOLS); do \
	  install -m 644 completions/$$t.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t; \
	  install -m 644 completions/$$t.zsh $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t; \
	  install -m 644 completions/$$t.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; \
	done

clean:
	rm -rf $(DEMO)
	$(CARGO) clean
