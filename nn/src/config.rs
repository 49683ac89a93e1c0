//! A run's settings, config.json: every one of them ([`TrainConfig`]), and the one rule of what continuing a run
//! may change of them ([`ON_CONTINUE`]). [`crate::run_dir::RunDir`] reads and writes the file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::autotune::Autotune;
use crate::device::{DeviceName, Precision};
use crate::models::ModelConfig;
use crate::recipe::RecipeRecord;

/// Every setting of a run; written to RUN/config.json at the start and read back by --resume and lens-infer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub pack: PathBuf,
    pub val_pack: Option<PathBuf>,
    pub model: String,
    pub model_config: ModelConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub grad_clip: Option<f64>,
    /// No weight decay on 1-D tensors (norms, biases, layer scales) and on position embeddings / class token.
    pub no_decay_norm_bias: bool,
    pub pos_weight: Option<f64>,
    /// The focal loss exponent (lens-train --focal-gamma); absent for plain BCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal_gamma: Option<f64>,
    /// The precision and memory format the run uses: given, or chosen by auto (then `autotune` says how).
    pub precision: Precision,
    pub channels_last: bool,
    /// What `--precision auto`/`--memory-format auto` measured and chose; absent when both were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autotune: Option<Autotune>,
    pub seed: u64,
    /// The seed of the validation split (lens-train --split-seed), apart from `seed` so that the models of one
    /// ensemble hold out the same objects. Absent in runs made before it existed, whose split was drawn from
    /// `seed`: [`TrainConfig::split_seed`] keeps drawing theirs so, and they resume as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    pub val_split: f64,
    pub patience: usize,
    pub pretrained: Option<PathBuf>,
    pub checkpoint_every: Option<usize>,
    /// Whether the whole pack is put on the device (lens-train --data-on-device): true or false as given, null for
    /// auto (on a GPU when the pack fits in a share of its free memory; see [`crate::batch::Placement`]). Where the
    /// batches come from changes nothing of what is learned.
    #[serde(default)]
    pub data_on_device: Option<bool>,
    pub device: DeviceName,
    /// The tool and version that made the run.
    pub tool: String,
    /// The recipe (lens-train --recipe) the run's lr, warm-up, decay groups, drop path and epochs came from, what
    /// it resolved to and which of them the command line overrode. Absent in runs made before recipes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<RecipeRecord>,
    /// The half-life, in epochs, of the moving average of the weights kept beside them (lens-train
    /// --ema-half-life); absent without one. The average is validated after every epoch beside the raw weights
    /// and model.safetensors holds whichever of the two did best.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_half_life: Option<f64>,
    /// How the training pack's pixels were scaled (its manifest's standardization mode) when the run started: what
    /// the model learns its numbers from. lens-train refuses to continue on a pack repacked another way, and
    /// lens-infer to score a pack scaled another way. Absent in runs made before it was recorded (lens-infer then
    /// reads the training pack's manifest, where the pack is still there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<lensfind_data::pack::Standardize>,
    /// The chance that a training image is shown under worse observing conditions, blurred and noisier (lens-train
    /// --degrade); absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degrade: Option<f64>,
    /// The training labels' smoothing epsilon (lens-train --label-smoothing): a lens is learnt as 1 - e/2 and a
    /// non-lens as e/2; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
}

/// What continuing a run (lens-train --resume or --auto-resume) does with one of its recorded settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnContinue {
    /// What the run computes: a command line that continues the run must agree with it (--auto-resume; auto
    /// precision matches whatever was recorded) and may not give it at all (--resume).
    Fixed,
    /// Where and how the run executes, not what it computes: the command line's value, when it gives one,
    /// replaces config.json's ([`Continued`]).
    MayChange,
    /// How other settings were chosen (the tool that wrote the run, auto's measurements, the recipe's record):
    /// neither compared nor given; the values they chose are compared.
    Record,
}

/// Every field of config.json and what continuing the run does with it: the one place this rule is written.
/// lens-train's check of what --resume may be given, [`TrainConfig::differences`] (--auto-resume) and
/// [`TrainConfig::continue_with`] all read it; a test checks that it names every field, and [`Continued`] every
/// field that may change.
pub(crate) const ON_CONTINUE: [(&str, OnContinue); 30] = {
    use OnContinue::{Fixed, MayChange, Record};
    [
        ("pack", Fixed),
        ("val_pack", Fixed),
        ("model", Fixed),
        ("model_config", Fixed),
        ("epochs", Fixed),
        ("batch_size", Fixed),
        ("lr", Fixed),
        ("weight_decay", Fixed),
        ("warmup_steps", Fixed),
        ("grad_clip", Fixed),
        ("no_decay_norm_bias", Fixed),
        ("pos_weight", Fixed),
        ("focal_gamma", Fixed),
        ("precision", Fixed),
        ("channels_last", MayChange),
        ("autotune", Record),
        ("seed", Fixed),
        ("split_seed", Fixed),
        ("val_split", Fixed),
        ("patience", Fixed),
        ("pretrained", Fixed),
        ("checkpoint_every", MayChange),
        ("data_on_device", MayChange),
        ("device", MayChange),
        ("tool", Record),
        ("recipe", Record),
        ("ema_half_life", Fixed),
        ("standardize", Fixed),
        ("degrade", Fixed),
        ("label_smoothing", Fixed),
    ]
};

/// What continuing a run does with config.json's field `name` (None: not a field).
pub fn on_continue(name: &str) -> Option<OnContinue> {
    ON_CONTINUE.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// The settings a command line gives anew when it continues a run: the [`OnContinue::MayChange`] fields, None where
/// it does not give one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Continued {
    pub device: Option<DeviceName>,
    pub checkpoint_every: Option<Option<usize>>,
    pub data_on_device: Option<Option<bool>>,
    /// The memory format: the layout of the arithmetic, not what it computes (a checkpoint's moments load element
    /// by element into the parameters' new strides).
    pub channels_last: Option<bool>,
}

impl Continued {
    /// The fields it holds, for the test that ties it to [`ON_CONTINUE`].
    #[cfg(test)]
    pub(crate) const FIELDS: [&str; 4] = ["device", "checkpoint_every", "data_on_device", "channels_last"];
}

impl TrainConfig {
    /// The seed the validation split is drawn from: `split_seed`, or `seed` for a run made before --split-seed.
    pub(crate) fn split_seed(&self) -> u64 {
        self.split_seed.unwrap_or(self.seed)
    }

    /// This run continued with what a command line gives anew (the settings that may change).
    pub(crate) fn continue_with(&mut self, c: &Continued) {
        if let Some(device) = c.device {
            self.device = device;
        }
        if let Some(every) = c.checkpoint_every {
            self.checkpoint_every = every;
        }
        if let Some(placement) = c.data_on_device {
            self.data_on_device = placement;
        }
        if let Some(channels_last) = c.channels_last {
            self.channels_last = channels_last;
        }
    }

    /// The [`OnContinue::Fixed`] settings in which `wanted` (a command line's) differs from this run's
    /// (config.json's), each as `NAME: VALUE in config.json, VALUE on the command line`; empty when the command line
    /// describes this run. `precision` is the command line's when it gave one, None for auto (which matches whatever
    /// the run recorded).
    pub(crate) fn differences(&self, wanted: &TrainConfig, precision: Option<Precision>) -> Vec<String> {
        let (recorded, wanted_json) = (to_object(self), to_object(wanted));
        let mut differences = Vec::new();
        let mut differ = |name: &str, recorded: String, wanted: String| {
            differences.push(format!("{name}: {recorded} in config.json, {wanted} on the command line"));
        };
        // By name, whatever order serde_json keeps.
        let mut names: Vec<&String> = recorded.keys().collect();
        names.sort();
        for name in names {
            let value = &recorded[name];
            let other = wanted_json.get(name).unwrap_or(&serde_json::Value::Null);
            // model_config follows from the model (and its options): named apart only when the model is the same.
            let follows_model = name == "model_config" && self.model != wanted.model;
            // The precision is compared below: the command line's is auto or given, never a placeholder.
            let fixed = on_continue(name) == Some(OnContinue::Fixed) && name != "precision";
            if fixed && value != other && !follows_model {
                differ(name, value.to_string(), other.to_string());
            }
        }
        if let Some(p) = precision.filter(|&p| p != self.precision) {
            differ("precision", self.precision.to_string(), p.to_string());
        }
        differences
    }
}

fn to_object(cfg: &TrainConfig) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(cfg).expect("a TrainConfig serialises") {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a TrainConfig serialises to an object"),
    }
}

#[cfg(test)]
impl TrainConfig {
    /// A run's settings, for tests.
    pub(crate) fn example() -> TrainConfig {
        TrainConfig {
            pack: "/data/train.pack".into(),
            val_pack: None,
            model: "convnext_atto".into(),
            model_config: ModelConfig::from_name("convnext_atto", None).unwrap(),
            epochs: 4,
            batch_size: 8,
            lr: 1e-4,
            weight_decay: 1e-2,
            warmup_steps: 0,
            grad_clip: None,
            no_decay_norm_bias: false,
            pos_weight: None,
            focal_gamma: None,
            precision: Precision::Bf16,
            channels_last: true,
            autotune: None,
            seed: 3,
            split_seed: Some(42),
            val_split: 0.2,
            patience: 8,
            pretrained: None,
            checkpoint_every: Some(3),
            data_on_device: None,
            device: DeviceName::Auto,
            tool: "lens-train 0.1.0".into(),
            recipe: None,
            ema_half_life: None,
            standardize: None,
            degrade: None,
            label_smoothing: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrainConfig {
        TrainConfig::example()
    }

    #[test]
    fn a_config_without_split_seed_draws_its_split_from_the_seed() {
        let mut json = serde_json::to_value(config()).unwrap();
        assert_eq!(json["split_seed"], 42);
        json.as_object_mut().unwrap().remove("split_seed");
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!((old.split_seed, old.split_seed()), (None, old.seed));
        assert_eq!(config().split_seed(), 42);
        // Written back, an old config stays without it (a resumed old run keeps drawing its split from the seed).
        assert!(serde_json::to_value(&old).unwrap().get("split_seed").is_none());
    }

    #[test]
    fn differences_name_what_a_command_line_changes_of_a_run() {
        let run = config();
        // Where and how it runs (device, saving, memory format, data placement), and the tool, may change; auto
        // precision matches what was recorded.
        let mut same = config();
        (same.device, same.checkpoint_every, same.tool) = (DeviceName::Cpu, None, "lens-train 0.2.0".into());
        (same.precision, same.channels_last, same.data_on_device) = (Precision::Fp32, false, Some(true));
        assert_eq!(run.differences(&same, None), Vec::<String>::new());
        assert_eq!(run.differences(&same, Some(Precision::Bf16)), Vec::<String>::new());

        let mut other = config();
        (other.epochs, other.pack, other.val_pack) = (5, "/data/other.pack".into(), Some("/data/val.pack".into()));
        assert_eq!(
            run.differences(&other, Some(Precision::Fp32)),
            [
                "epochs: 4 in config.json, 5 on the command line",
                "pack: \"/data/train.pack\" in config.json, \"/data/other.pack\" on the command line",
                "val_pack: null in config.json, \"/data/val.pack\" on the command line",
                "precision: bf16 in config.json, fp32 on the command line",
            ]
        );

        // Another model is one difference, not also its model_config; the same model with another drop path is.
        let mut femto = config();
        (femto.model, femto.model_config) =
            ("convnext_femto".into(), ModelConfig::from_name("convnext_femto", None).unwrap());
        let d = run.differences(&femto, None);
        assert_eq!(d, ["model: \"convnext_atto\" in config.json, \"convnext_femto\" on the command line"]);
        let mut drop = config();
        drop.model_config.set_drop_path(0.1);
        let d = run.differences(&drop, None);
        assert!(d.len() == 1 && d[0].starts_with("model_config: "), "{d:?}");
    }
}

#[cfg(test)]
mod continue_tests {
    use super::*;

    #[test]
    fn every_field_of_config_json_has_a_rule_for_continuing_and_the_changeable_ones_can_be_given() {
        // The fields, from a config.json with every optional field present.
        let mut cfg = TrainConfig::example();
        (cfg.split_seed, cfg.autotune, cfg.recipe, cfg.ema_half_life) = (Some(1), None, None, Some(1.0));
        (cfg.focal_gamma, cfg.degrade, cfg.label_smoothing) = (Some(2.0), Some(0.5), Some(0.1));
        cfg.standardize = Some(lensfind_data::pack::Standardize::Noise);
        let mut fields: Vec<String> = to_object(&cfg).keys().cloned().collect();
        fields.extend(["autotune".to_string(), "recipe".to_string()]);
        fields.sort();
        fields.dedup();
        let mut named: Vec<String> = ON_CONTINUE.iter().map(|(n, _)| n.to_string()).collect();
        named.sort();
        assert_eq!(fields, named, "ON_CONTINUE names every field of config.json, and nothing else");
        let may_change: Vec<&str> =
            ON_CONTINUE.iter().filter(|(_, p)| *p == OnContinue::MayChange).map(|(n, _)| *n).collect();
        let mut given = Continued::FIELDS.to_vec();
        given.sort();
        let mut may_change_sorted = may_change.clone();
        may_change_sorted.sort();
        assert_eq!(given, may_change_sorted, "Continued carries exactly the settings that may change");
        // continue_with changes those and nothing else.
        let before = TrainConfig::example();
        let mut after = before.clone();
        after.continue_with(&Continued {
            device: Some(DeviceName::CudaIndex(1)),
            checkpoint_every: Some(Some(7)),
            data_on_device: Some(Some(false)),
            channels_last: Some(!before.channels_last),
        });
        let (b, a) = (to_object(&before), to_object(&after));
        for (name, policy) in ON_CONTINUE {
            let changed = b.get(name) != a.get(name);
            assert_eq!(changed, policy == OnContinue::MayChange, "{name}");
        }
        let mut same = before.clone();
        same.continue_with(&Continued::default());
        assert_eq!(same, before, "nothing given, nothing changed");
    }
}
