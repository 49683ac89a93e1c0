//! Starting from a timm ImageNet checkpoint (safetensors): the first convolution adapted to 5 channels with
//! timm's rule, ViT position embeddings resampled to the model's grid as timm does, the 1000-class classifier
//! dropped for the fresh single-logit head, and a report of what was loaded, adapted, missing or unexpected.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use super::ModelConfig;

/// What an import did, key by key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// Copied as they are.
    pub loaded: Vec<String>,
    /// Changed to fit: (key, what was done).
    pub adapted: Vec<(String, String)>,
    /// In the model, not in the checkpoint: left at their fresh init.
    pub missing: Vec<String>,
    /// In the checkpoint, not used: (key, why).
    pub unexpected: Vec<(String, String)>,
}

/// timm's `adapt_input_conv` for more than one target channel: repeat the RGB filters ceil(in/3) times, keep the
/// first `in_chans`, scale by 3/in_chans so activations keep their magnitude.
pub(crate) fn adapt_input_conv(weight: &Tensor, in_chans: i64) -> Tensor {
    let have = weight.size()[1];
    if have == in_chans {
        return weight.shallow_clone();
    }
    let kind = weight.kind();
    let w = weight.to_kind(Kind::Float);
    if in_chans == 1 {
        return w.sum_dim_intlist([1i64].as_slice(), true, Kind::Float).to_kind(kind);
    }
    let repeat = (in_chans + have - 1) / have;
    let w = w.repeat([1, repeat, 1, 1]).narrow(1, 0, in_chans) * (have as f64 / in_chans as f64);
    w.to_kind(kind)
}

/// timm's `resample_abs_pos_embed` with one prefix (class) token: bicubic, antialiased, align_corners=False.
/// `pos` must be [1, 1 + n*n, D]; anything else is an error that says what it is.
pub(crate) fn resample_pos_embed(pos: &Tensor, new_grid: (i64, i64)) -> Result<Tensor> {
    let size = pos.size();
    let &[one, n, d] = size.as_slice() else {
        bail!("pos_embed has shape {size:?}, not [1, 1 + n*n, D] (a class token and an n x n grid of patches)");
    };
    let old = ((n - 1).max(0) as f64).sqrt().round() as i64;
    if one != 1 || n < 2 || old * old != n - 1 || d < 1 {
        bail!("pos_embed has shape {size:?}, not [1, 1 + n*n, D] (a class token and an n x n grid of patches)");
    }
    let kind = pos.kind();
    let prefix = pos.narrow(1, 0, 1);
    let grid = pos.narrow(1, 1, n - 1).to_kind(Kind::Float).reshape([1, old, old, d]).permute([0, 3, 1, 2]);
    let grid = grid.internal_upsample_bicubic2d_aa([new_grid.0, new_grid.1], false, None, None);
    let grid = grid.permute([0, 2, 3, 1]).reshape([1, -1, d]).to_kind(kind);
    Ok(Tensor::cat(&[prefix, grid], 1))
}

/// Whether a variable is the classifier's (timm's `head.fc` in ConvNeXt, `head` in ViT): an ImageNet checkpoint's
/// 1000-class classifier does not fit the single-logit head, which then keeps its fresh init.
fn is_classifier(name: &str) -> bool {
    name.starts_with("head.fc.") || name == "head.weight" || name == "head.bias"
}

/// Why a checkpoint tensor of shape `from` cannot become the model's variable `name` of shape `to` (`cfg`'s), or
/// None when it can: the first convolution may differ in its input channels only (adapted with timm's rule), a
/// ViT's position embeddings in their number of patches only (resampled); nothing else may differ.
fn unadaptable(cfg: &ModelConfig, name: &str, from: &[i64], to: &[i64]) -> Option<String> {
    if name == cfg.first_conv() {
        let fits = from.len() == 4 && from[1] >= 1 && from[0] == to[0] && from[2..] == to[2..];
        return (!fits).then(|| {
            format!(
                "{name} (the first convolution) has shape {from:?}; the model's is {to:?}, and only the input \
                 channels (the second number) can be adapted"
            )
        });
    }
    if name == "pos_embed" && matches!(cfg, ModelConfig::Vit(_)) {
        let n = from.get(1).copied().unwrap_or(0) - 1;
        let side = (n.max(0) as f64).sqrt().round() as i64;
        let fits = from.len() == 3 && from[0] == 1 && n >= 1 && side * side == n && from[2] == to[2];
        return (!fits).then(|| {
            format!(
                "pos_embed has shape {from:?}; only [1, 1 + n*n, {}] (a class token and an n x n grid, the model's \
                 width) can be resampled to the model's {to:?}",
                to[2]
            )
        });
    }
    Some(format!("{name} has shape {from:?} where the model's is {to:?}"))
}

/// Loads a timm checkpoint into the variables of a model built from `cfg` in `vs`. A checkpoint that does not fit
/// the model (a tensor of the model missing from it, or of a shape that cannot be adapted) is an error naming the
/// tensors, and nothing is loaded; the classifier alone may be absent or of another shape.
pub fn import_timm(vs: &VarStore, cfg: &ModelConfig, path: &Path) -> Result<ImportReport> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("reading {} (a timm checkpoint as safetensors)", path.display()))?;
    // Checkpoints saved from a DataParallel or Lightning wrapper carry a prefix.
    let ckpt: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k.strip_prefix("module.").or_else(|| k.strip_prefix("model.")).unwrap_or(&k).to_string();
            (k, v)
        })
        .collect();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));

    // First every tensor is checked, so that a checkpoint that does not fit changes nothing.
    check_fit(cfg, path, &vars, &ckpt)?;

    let mut report = ImportReport::default();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let Some(src) = ckpt.get(name) else {
                report.missing.push(name.clone());
                continue;
            };
            let mut value = src.to_device(var.device()).to_kind(var.kind());
            if value.size() != var.size() {
                if is_classifier(name) {
                    report.unexpected.push((
                        name.clone(),
                        format!(
                            "a classifier of shape {:?}, not the model's {:?}: kept the fresh head",
                            src.size(),
                            var.size()
                        ),
                    ));
                    report.missing.push(name.clone());
                    continue;
                }
                match cfg {
                    _ if name == cfg.first_conv() => {
                        let from = value.size()[1];
                        value = adapt_input_conv(&value, var.size()[1]);
                        report.adapted.push((name.clone(), format!("first conv {from} -> {} channels", var.size()[1])));
                    }
                    ModelConfig::Vit(v) if name == "pos_embed" => {
                        let from = value.size()[1];
                        value = resample_pos_embed(&value, (v.grid(), v.grid()))?;
                        report.adapted.push((name.clone(), format!("resampled {from} -> {} tokens", var.size()[1])));
                    }
                    _ => {}
                }
            }
            if value.size() != var.size() {
                // Not reached: `unadaptable` let through only what the two adaptations above make fit.
                bail!("{name}: adapted to {:?}, the model's is {:?}", value.size(), var.size());
            }
            var.shallow_clone().copy_(&value);
            if !report.adapted.iter().any(|(k, _)| k == name) {
                report.loaded.push(name.clone());
            }
        }
        Ok(())
    })?;
    for key in ckpt.keys() {
        if !vars.iter().any(|(n, _)| n == key) {
            report.unexpected.push((key.clone(), "not a variable of this model".into()));
        }
    }
    Ok(report)
}

/// Refuses a checkpoint that lacks one of the model's tensors (the classifier may be absent) or holds one of a shape
/// that neither adaptation (first convolution, ViT position embeddings) makes fit, naming them.
fn check_fit(cfg: &ModelConfig, path: &Path, vars: &[(String, Tensor)], ckpt: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut absent = Vec::new();
    let mut misfits = Vec::new();
    for (name, var) in vars {
        match ckpt.get(name) {
            None if is_classifier(name) => {}
            None => absent.push(name.as_str()),
            Some(src) if src.size() == var.size() || is_classifier(name) => {}
            Some(src) => misfits.extend(unadaptable(cfg, name, &src.size(), &var.size())),
        }
    }
    if !absent.is_empty() {
        let first = if absent.contains(&cfg.first_conv()) {
            format!(" (among them {}, the first convolution)", cfg.first_conv())
        } else {
            String::new()
        };
        bail!(
            "{} does not fit this {} model: it lacks {} of the model's {} tensors{first}: {}",
            path.display(),
            cfg.family(),
            absent.len(),
            vars.len(),
            list(&absent)
        );
    }
    if !misfits.is_empty() {
        bail!("{} does not fit this {} model: {}", path.display(), cfg.family(), list(&misfits));
    }
    Ok(())
}

/// The first few of `items` and how many more, for an error message.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 5;
    let mut text = items.iter().take(SHOWN).map(ToString::to_string).collect::<Vec<_>>().join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    text
}
