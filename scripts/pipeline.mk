# The whole challenge workflow as make targets with real file dependencies:
#
#   FITS dirs -> OUT/{train,test}.index.csv -> OUT/{train,test}.pack -> OUT/runs/MODEL/model.safetensors
#             -> OUT/MODEL.logits.csv -> OUT/submission.csv -> OUT/metrics.json (with TRUTH), OUT/candidates.png
#   the runs' validation predictions (one split, SPLIT_SEED) -> OUT/val.ensemble.csv -> OUT/threshold.json
#             (OPERATING_POINT), OUT/calibration.json -> OUT/challenge.csv (the challenge's submission format)
#             -> OUT/challenge.metrics.json (with TRUTH: the realised TPR and FPR at the operating point)
#
#   make -f scripts/pipeline.mk                  # synthetic data from lens-synth, two small models, 5 epochs
#   make -f scripts/pipeline.mk -j2              # independent steps in parallel (packs, trainings, inference)
#   make -f scripts/pipeline.mk OUT=work TRAIN_DATA=/data/train TEST_DATA=/data/test TRUTH= \
#        MODELS='convnext_tiny convnext_small' EPOCHS=50 TRAIN_ARGS=                       # the real challenge
#   make -f scripts/pipeline.mk MODELS=convnext_atto SEEDS='1 2 3' WEIGHTS=validation      # a seed ensemble
#
# A second `make` does nothing; changing a file reruns what depends on it (touch OUT/test.index.csv re-packs and
# re-scores the test set, leaving the trained models alone). Changing a variable is not tracked: delete the
# target (or use make -B). Every tool writes its output under a temporary name and renames it into place, and a
# training run is built in OUT/runs/MODEL.partial and renamed to OUT/runs/MODEL only when it has finished, so a
# killed make never leaves a half-written file that looks up to date.

# Where the tools are: this checkout's release build if there is one, else $PATH (after make install).
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BIN ?= $(if $(wildcard $(ROOT)/target/release/lens-train),$(ROOT)/target/release/)

OUT ?= pipeline
# Training and test data: FITS directories (one or more roots, as lens-index takes them). Empty: synthetic data
# from lens-synth, SYNTH_OBJECTS objects per class and source, under OUT/synth.
TRAIN_DATA ?=
TEST_DATA ?=
SYNTH_OBJECTS ?= 200
# Labels of the test set for lens-eval (a labels CSV, an index or a pack); empty for a blind set: no metrics.json.
TRUTH ?= $(if $(TEST_DATA),,$(OUT)/synth/test/labels.csv)
# One training run per model (lens-train --list-models), named after it.
MODELS ?= convnext_atto convnext_femto
EPOCHS ?= 5
# The synthetic sets' seed (the test set's is SEED + 1000), and lens-train's unless SEEDS says otherwise.
SEED ?= 1
# lens-train --seed of each model's runs: one seed, one run per model (OUT/runs/MODEL); several, a seed ensemble,
# one run per model and seed (OUT/runs/MODEL.sSEED), every member on the same data and validation split.
SEEDS ?= $(SEED)
# How the members' logits are merged: equal (the mean logit) or validation (lens-ensemble --weights-from: weights
# chosen on the members' validation predictions, never worse than equal there; the same weights everywhere).
WEIGHTS ?= equal
# Every model holds out the same validation objects (lens-train --split-seed), so that their validation
# predictions ensemble into the ensemble's own, on which the operating point and the calibration are chosen.
SPLIT_SEED ?= 42
# The operating point of the challenge submission (lens-eval --pick-threshold): fpr=X, tpr=X, f1 or fraction=X.
OPERATING_POINT ?= fpr=1e-2
# Extra options for each tool. The defaults suit the small synthetic set; the real one wants lens-train's
# defaults (batch 256, its recipe's learning rate), so pass TRAIN_ARGS= there, or TRAIN_ARGS='--recipe robust'
# for a final model (README: Recipes). With make -j, give each run a share of the cores
# (TRAIN_ARGS+=--threads N): every lens-train and lens-infer uses all cores by default. lens-infer's own default
# test-time augmentation is d4 (8 views); INFER_ARGS='--tta flips' scores with the reference's 3.
PACK_ARGS ?=
TRAIN_ARGS ?= --batch-size 64 --lr 2e-3
INFER_ARGS ?=
VIEW_ARGS ?= --top 36

comma := ,
empty :=
space := $(empty) $(empty)

.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:
.PHONY: all clean

all: $(OUT)/submission.csv $(OUT)/challenge.csv $(OUT)/candidates.png \
     $(if $(TRUTH),$(OUT)/metrics.json $(OUT)/challenge.metrics.json)

# --- the data: real directories, or synthetic ones made here.
ifeq ($(TRAIN_DATA),)
TRAIN_ROOTS := $(OUT)/synth/train
TRAIN_DEPS := $(OUT)/synth/train/.done
$(OUT)/synth/train/.done:
	rm -rf $(@D)
	$(BIN)lens-synth -q --out $(@D) --objects $(SYNTH_OBJECTS) --seed $(SEED) --corrupt 2
	touch $@
else
TRAIN_ROOTS := $(TRAIN_DATA)
# Every directory under the roots: adding or removing a file changes its directory's time, and re-indexes.
TRAIN_DEPS := $(shell find $(TRAIN_DATA) -type d 2>/dev/null)
endif

ifeq ($(TEST_DATA),)
TEST_ROOTS := $(OUT)/synth/test
TEST_DEPS := $(OUT)/synth/test/.done
$(OUT)/synth/test/.done:
	rm -rf $(@D)
	$(BIN)lens-synth -q --out $(@D) --objects $(SYNTH_OBJECTS) --seed $$(( $(SEED) + 1000 )) --blind
	touch $@
# The synthetic labels are written with the test set: its stamp stands for them.
TRUTH_DEPS := $(if $(filter $(OUT)/synth/test/%,$(TRUTH)),$(TEST_DEPS),$(TRUTH))
else
TEST_ROOTS := $(TEST_DATA)
TEST_DEPS := $(shell find $(TEST_DATA) -type d 2>/dev/null)
TRUTH_DEPS := $(TRUTH)
endif

# --- index and pack (lens-index and lens-pack write atomically; a pack directory is renamed into place whole).
$(OUT)/train.index.csv: $(TRAIN_DEPS)
	@mkdir -p $(@D)
	$(BIN)lens-index $(TRAIN_ROOTS) --problems $(OUT)/train.problems.csv -o $@

$(OUT)/test.index.csv: $(TEST_DEPS)
	@mkdir -p $(@D)
	$(BIN)lens-index $(TEST_ROOTS) --problems $(OUT)/test.problems.csv -o $@

$(OUT)/%.pack/pack.json: $(OUT)/%.index.csv
	$(BIN)lens-pack $(PACK_ARGS) $< -o $(OUT)/$*.pack

# --- training: built in MEMBER.partial, renamed to MEMBER when finished, so model.safetensors (which lens-train
# updates at every better epoch) is only ever seen in a whole run. An interrupted run starts again from scratch;
# to resume one by hand: lens-train --resume --out OUT/runs/MEMBER.partial, then rerun make. A member is MODEL
# (seed SEED) or MODEL.sSEED (model names hold no dot: lens-train --list-models).
ifneq ($(words $(SEEDS)),1)
MEMBERS := $(foreach m,$(MODELS),$(foreach s,$(SEEDS),$(m).s$(s)))
else
MEMBERS := $(MODELS)
endif
member_model = $(basename $(1))
member_seed = $(or $(patsubst .s%,%,$(suffix $(1))),$(strip $(SEEDS)))

$(OUT)/runs/%/model.safetensors: $(OUT)/train.pack/pack.json
	rm -rf $(OUT)/runs/$*.partial
	$(BIN)lens-train --pack $(OUT)/train.pack --out $(OUT)/runs/$*.partial --model $(call member_model,$*) \
	  --epochs $(EPOCHS) --seed $(call member_seed,$*) --split-seed $(SPLIT_SEED) $(TRAIN_ARGS)
	rm -rf $(OUT)/runs/$*
	mv $(OUT)/runs/$*.partial $(OUT)/runs/$*

# --- scores, submission, evaluation, contact sheet.
$(OUT)/%.logits.csv: $(OUT)/runs/%/model.safetensors $(OUT)/test.pack/pack.json
	$(BIN)lens-infer --run $(OUT)/runs/$* --pack $(OUT)/test.pack $(INFER_ARGS) -o $@

LOGITS := $(foreach m,$(MEMBERS),$(OUT)/$(m).logits.csv)
MODEL_FILES := $(foreach m,$(MEMBERS),$(OUT)/runs/$(m)/model.safetensors)
VALIDATION := $(foreach m,$(MEMBERS),$(OUT)/runs/$(m)/val_predictions.csv)
ifeq ($(WEIGHTS),validation)
WEIGHTS_FROM := --weights-from $(subst $(space),$(comma),$(strip $(VALIDATION)))
WEIGHT_DEPS := $(MODEL_FILES)
else ifeq ($(WEIGHTS),equal)
WEIGHTS_FROM :=
WEIGHT_DEPS :=
else
$(error WEIGHTS=$(WEIGHTS): equal or validation)
endif

# --- the ensemble's validation scores, its operating point and calibration, chosen on them (with
# WEIGHTS=validation, lens-ensemble prints the weights it chose here, and chooses the same ones again below).
$(OUT)/val.ensemble.csv: $(MODEL_FILES)
	$(BIN)lens-ensemble $(WEIGHTS_FROM) $(VALIDATION) -o $@

$(OUT)/threshold.json: $(OUT)/val.ensemble.csv
	$(BIN)lens-eval --pred $< --pick-threshold $(OPERATING_POINT) > $@.tmp
	mv $@.tmp $@

# The validation metrics (before calibration) come with the calibration fitted on the same scores.
$(OUT)/calibration.json: $(OUT)/val.ensemble.csv
	$(BIN)lens-eval --pred $< --fit-calibration $@ > $(OUT)/val.metrics.json.tmp
	mv $(OUT)/val.metrics.json.tmp $(OUT)/val.metrics.json

# --- scores (calibrated probabilities), the challenge submission at the operating point, evaluation.
$(OUT)/submission.csv: $(LOGITS) $(OUT)/calibration.json $(WEIGHT_DEPS)
	$(BIN)lens-ensemble $(if $(WEIGHTS_FROM),-q $(WEIGHTS_FROM)) $(LOGITS) --calibration $(OUT)/calibration.json -o $@

$(OUT)/challenge.csv: $(LOGITS) $(OUT)/threshold.json $(WEIGHT_DEPS)
	$(BIN)lens-ensemble $(if $(WEIGHTS_FROM),-q $(WEIGHTS_FROM)) $(LOGITS) --threshold $(OUT)/threshold.json --format challenge -o $@

$(OUT)/metrics.json: $(OUT)/submission.csv $(TRUTH_DEPS)
	$(BIN)lens-eval --pred $< --truth $(TRUTH) --roc $(OUT)/roc.csv --plot $(OUT)/roc.png > $@.tmp
	mv $@.tmp $@

$(OUT)/challenge.metrics.json: $(OUT)/challenge.csv $(TRUTH_DEPS)
	$(BIN)lens-eval --pred $< --truth $(TRUTH) > $@.tmp
	mv $@.tmp $@

$(OUT)/candidates.png: $(OUT)/submission.csv $(OUT)/test.pack/pack.json
	$(BIN)lens-view -q --pack $(OUT)/test.pack --scores $< $(VIEW_ARGS) -o $@

clean:
	rm -rf $(OUT)
