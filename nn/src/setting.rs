//! Errors about a value a user gave: typed by the setting they concern, so that the library names the setting (as
//! config.json does) and each tool words it in its own terms (lens-train and lens-infer: the option of the same
//! name, `--batch-size` for `batch_size`; see `cli::word_with_flags`).

/// A setting that a user gives a value for, by what it is (its name in config.json where it is recorded there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Pack,
    Out,
    InputSize,
    BatchSize,
    Epochs,
    ValSplit,
    EmaHalfLife,
    FocalGamma,
    Degrade,
    LabelSmoothing,
    DataOnDevice,
    Device,
    Precision,
    DistBackend,
}

impl Setting {
    /// Its name: config.json's field for the recorded ones, and as the tools' options call it (with `_` for `-`).
    pub fn name(self) -> &'static str {
        match self {
            Setting::Pack => "pack",
            Setting::Out => "out",
            Setting::InputSize => "input_size",
            Setting::BatchSize => "batch_size",
            Setting::Epochs => "epochs",
            Setting::ValSplit => "val_split",
            Setting::EmaHalfLife => "ema_half_life",
            Setting::FocalGamma => "focal_gamma",
            Setting::Degrade => "degrade",
            Setting::LabelSmoothing => "label_smoothing",
            Setting::DataOnDevice => "data_on_device",
            Setting::Device => "device",
            Setting::Precision => "precision",
            Setting::DistBackend => "dist_backend",
        }
    }
}

/// A value of a setting that cannot be used, and why (with what to do about it where there is something).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.worded(|s| s.name().to_string()))]
pub struct SettingError {
    pub setting: Setting,
    /// The value as given (None: the setting is missing).
    pub value: Option<String>,
    pub problem: String,
}

impl SettingError {
    pub(crate) fn new(setting: Setting, value: impl std::fmt::Display, problem: impl Into<String>) -> SettingError {
        SettingError { setting, value: Some(value.to_string()), problem: problem.into() }
    }

    pub(crate) fn missing(setting: Setting, problem: impl Into<String>) -> SettingError {
        SettingError { setting, value: None, problem: problem.into() }
    }

    /// The message with the setting called `name_of(setting)`: "NAME VALUE: PROBLEM", or "NAME: PROBLEM" when
    /// the setting is missing.
    pub fn worded(&self, name_of: impl Fn(Setting) -> String) -> String {
        match &self.value {
            Some(v) => format!("{} {v}: {}", name_of(self.setting), self.problem),
            None => format!("{}: {}", name_of(self.setting), self.problem),
        }
    }
}

/// A pack scaled otherwise than the run needs (lens-pack's standardisation): the model would see other numbers
/// than it learns or learnt from. The remedy is to pack it again, scaled `to` (None: either of two packs, so that
/// they agree); each tool words it with the command that does that (see `cli::word_with_flags`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.worded(|to| match to {
    Some(to) => format!("pack it again standardised {to}"),
    None => "pack one of them again so that both are standardised alike".to_string(),
}))]
pub struct ScalingMismatch {
    /// What does not agree with what, and why it matters.
    pub problem: String,
    pub to: Option<lensfind_data::pack::Standardize>,
}

impl ScalingMismatch {
    /// The message with the remedy worded by `remedy(to)`: "PROBLEM: REMEDY".
    pub fn worded(&self, remedy: impl Fn(Option<lensfind_data::pack::Standardize>) -> String) -> String {
        format!("{}: {}", self.problem, remedy(self.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_setting_its_value_and_the_problem() {
        let e = SettingError::new(Setting::BatchSize, 0, "must be at least 1");
        assert_eq!(e.to_string(), "batch_size 0: must be at least 1");
        assert_eq!(e.worded(|s| format!("--{}", s.name().replace('_', "-"))), "--batch-size 0: must be at least 1");
        assert_eq!(
            SettingError::missing(Setting::Pack, "a new run needs one").to_string(),
            "pack: a new run needs one"
        );
    }

    #[test]
    fn a_scaling_mismatch_says_to_pack_again_and_how() {
        use lensfind_data::pack::Standardize;
        let e = ScalingMismatch { problem: "x.pack is standardised cube".into(), to: Some(Standardize::Noise) };
        assert_eq!(e.to_string(), "x.pack is standardised cube: pack it again standardised noise");
        assert_eq!(e.worded(|to| format!("to {}", to.unwrap())), "x.pack is standardised cube: to noise");
        let e = ScalingMismatch { problem: "two packs differ".into(), to: None };
        assert_eq!(e.to_string(), "two packs differ: pack one of them again so that both are standardised alike");
    }
}
