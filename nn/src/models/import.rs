//! Starting from a timm ImageNet checkpoint (safetensors): the first convolution adapted to 5 channels with
//! timm's rule, ViT position embeddings resampled to the model's grid as timm does, the 1000-class classifier
//! dropped for the fresh single-logit head, and a report of what was loaded, adapted, missing or unexpected.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
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
pub fn adapt_input_conv(weight: &Tensor, in_chans: i64) -> Tensor {
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
pub fn resample_pos_embed(pos: &Tensor, new_grid: (i64, i64)) -> Tensor {
    let (_, n, d) = pos.size3().expect("pos_embed is [1, N, D]");
    let old = ((n - 1) as f64).sqrt().round() as i64;
    let kind = pos.kind();
    let prefix = pos.narrow(1, 0, 1);
    let grid = pos.narrow(1, 1, n - 1).to_kind(Kind::Float).reshape([1, old, old, d]).permute([0, 3, 1, 2]);
    let grid = grid.internal_upsample_bicubic2d_aa([new_grid.0, new_grid.1], false, None, None);
    let grid = grid.permute([0, 2, 3, 1]).reshape([1, -1, d]).to_kind(kind);
    Tensor::cat(&[prefix, grid], 1)
}

/// Loads a timm checkpoint into the variables of a model built from `cfg` in `vs`.
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
    let mut report = ImportReport::default();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let Some(src) = ckpt.get(name) else {
                report.missing.push(name.clone());
                continue;
            };
            let mut value = src.to_device(var.device()).to_kind(var.kind());
            if value.size() != var.size() {
                if name == cfg.first_conv() && value.dim() == 4 {
                    let from = value.size()[1];
                    value = adapt_input_conv(&value, var.size()[1]);
                    report.adapted.push((name.clone(), format!("first conv {from} -> {} channels", var.size()[1])));
                } else if name == "pos_embed" {
                    if let ModelConfig::Vit(v) = cfg {
                        let from = value.size()[1];
                        value = resample_pos_embed(&value, (v.grid(), v.grid()));
                        report.adapted.push((name.clone(), format!("resampled {from} -> {} tokens", var.size()[1])));
                    }
                }
            }
            if value.size() != var.size() {
                report.unexpected.push((
                    name.clone(),
                    format!("shape {:?} does not fit {:?}; kept the fresh init", src.size(), var.size()),
                ));
                report.missing.push(name.clone());
                continue;
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
