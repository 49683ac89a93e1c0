//! The models: ConvNeXt and ViT with timm's variable names, the registry of their names (the reference's
//! `--model-name` values) with the input size each expects, and the import of timm checkpoints.

pub mod convnext;
pub mod import;
pub mod layers;
pub mod vit;

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::shim::without_autocast;
use convnext::{ConvNext, ConvNextConfig};
use vit::{Vit, VitConfig};

/// Side of the challenge cutouts: ConvNeXt runs on them natively.
pub(crate) const NATIVE_SIZE: i64 = 41;

/// Everything needed to rebuild a model; serialised into a run's config.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum ModelConfig {
    ConvNext(ConvNextConfig),
    Vit(VitConfig),
}

impl ModelConfig {
    /// The registered model `name`. `input_size` matters to ViT only (its position embeddings depend on it;
    /// default 224, the reference's upsampled input); ConvNeXt takes any size and runs at the native 41.
    pub fn from_name(name: &str, input_size: Option<i64>) -> Result<ModelConfig> {
        let Some((_, arch)) = MODELS.iter().find(|(n, _)| *n == name) else {
            bail!("unknown model {name:?}; known: {}", names().collect::<Vec<_>>().join(", "));
        };
        Ok(match *arch {
            Arch::ConvNext { depths, dims, conv_mlp } => {
                ModelConfig::ConvNext(ConvNextConfig::new(&depths, &dims, conv_mlp))
            }
            Arch::Vit { patch, embed_dim, depth, heads } => {
                let size = input_size.unwrap_or(224);
                if size < patch || size % patch != 0 {
                    bail!("{name}: input size {size} is not a positive multiple of the patch size {patch}");
                }
                ModelConfig::Vit(VitConfig::new(size, patch, embed_dim, depth, heads))
            }
        })
    }

    /// The square input side the model is run at.
    pub fn input_size(&self) -> i64 {
        match self {
            ModelConfig::ConvNext(_) => NATIVE_SIZE,
            ModelConfig::Vit(v) => v.img_size,
        }
    }

    /// An estimate of the bytes one image takes in a training step: the activations the backward pass keeps and
    /// the temporaries beside them, in float32 (autocast keeps some in 16 bits: then an upper bound). Counted from
    /// the model's shape: ConvNeXt about 16 maps of a block's width per pixel of its stage (the depthwise
    /// convolution's input and output, the norm, the 4x MLP's two wide maps, the residual, and the backward pass's
    /// temporaries), ViT about 16 vectors per token per block and two attention maps per head. On an H200, PyTorch
    /// took 2.7 MB an image for convnext_tiny@41 and 1.4 MB for convnext_atto@41 (bf16 autocast, peak memory less
    /// data and optimizer state, batch 1024 and 256); this gives 3.8 and 1.1 MB.
    pub(crate) fn training_bytes_per_image(&self) -> u64 {
        const PER_ELEMENT: f64 = 16.0 * 4.0; // maps per element, 4 bytes each
        let floats = match self {
            ModelConfig::ConvNext(c) => {
                // The stem's 4x4 stride-4 patches, then each downsampling halves the side.
                let mut side = (NATIVE_SIZE / 4) as f64;
                let mut sum = 0.0;
                for (i, (&depth, &dim)) in c.depths.iter().zip(&c.dims).enumerate() {
                    if i > 0 {
                        side = (side / 2.0).floor().max(1.0);
                    }
                    sum += (depth * dim) as f64 * side * side;
                }
                sum
            }
            ModelConfig::Vit(v) => {
                let tokens = ((v.img_size / v.patch_size).pow(2) + 1) as f64;
                let per_block = tokens * v.embed_dim as f64 + (2 * v.num_heads) as f64 * tokens * tokens / 16.0;
                v.depth as f64 * per_block
            }
        };
        (floats * PER_ELEMENT) as u64
    }

    pub fn param_count(&self) -> i64 {
        match self {
            ModelConfig::ConvNext(c) => c.param_count(),
            ModelConfig::Vit(v) => v.param_count(),
        }
    }

    /// The timm key of the first convolution (adapted to 5 channels on import).
    pub(crate) fn first_conv(&self) -> &'static str {
        match self {
            ModelConfig::ConvNext(_) => "stem.0.weight",
            ModelConfig::Vit(_) => "patch_embed.proj.weight",
        }
    }

    pub(crate) fn family(&self) -> &'static str {
        match self {
            ModelConfig::ConvNext(_) => "convnext",
            ModelConfig::Vit(_) => "vit",
        }
    }

    /// The stochastic depth rate of the last block (timm's drop_path_rate).
    pub fn drop_path(&self) -> f64 {
        match self {
            ModelConfig::ConvNext(c) => c.drop_path_rate,
            ModelConfig::Vit(v) => v.drop_path_rate,
        }
    }

    pub(crate) fn set_drop_path(&mut self, rate: f64) {
        match self {
            ModelConfig::ConvNext(c) => c.drop_path_rate = rate,
            ModelConfig::Vit(v) => v.drop_path_rate = rate,
        }
    }

    /// Creates the model's variables under `p` (fresh timm-style init) and returns the model.
    pub fn build(&self, p: &nn::Path) -> Model {
        match self {
            ModelConfig::ConvNext(c) => Model::ConvNext(ConvNext::new(p, c)),
            ModelConfig::Vit(v) => Model::Vit(Vit::new(p, v)),
        }
    }
}

/// The numbers that tell the registered models of a family apart.
enum Arch {
    ConvNext { depths: [i64; 4], dims: [i64; 4], conv_mlp: bool },
    Vit { patch: i64, embed_dim: i64, depth: i64, heads: i64 },
}

const fn convnext(depths: [i64; 4], dims: [i64; 4], conv_mlp: bool) -> Arch {
    Arch::ConvNext { depths, dims, conv_mlp }
}

const fn vit16(embed_dim: i64, depth: i64, heads: i64) -> Arch {
    Arch::Vit { patch: 16, embed_dim, depth, heads }
}

/// The registered models (timm's names and numbers), in the order `--list-models` shows them: the one table that
/// names, constructors and parameter counts derive from.
const MODELS: [(&str, Arch); 10] = [
    ("convnext_atto", convnext([2, 2, 6, 2], [40, 80, 160, 320], true)),
    ("convnext_femto", convnext([2, 2, 6, 2], [48, 96, 192, 384], true)),
    ("convnext_pico", convnext([2, 2, 6, 2], [64, 128, 256, 512], true)),
    ("convnext_nano", convnext([2, 2, 8, 2], [80, 160, 320, 640], true)),
    ("convnext_tiny", convnext([3, 3, 9, 3], [96, 192, 384, 768], false)),
    ("convnext_small", convnext([3, 3, 27, 3], [96, 192, 384, 768], false)),
    ("convnext_base", convnext([3, 3, 27, 3], [128, 256, 512, 1024], false)),
    ("vit_tiny_patch16_224", vit16(192, 12, 3)),
    ("vit_small_patch16_224", vit16(384, 12, 6)),
    ("vit_base_patch16_224", vit16(768, 12, 12)),
];

/// The registered model names, in table order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    MODELS.iter().map(|(name, _)| *name)
}

/// A registry entry as listed to users.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: &'static str,
    pub config: ModelConfig,
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = self.config.input_size();
        write!(
            f,
            "{:<24} {:<9} {:>3}x{:<3} {:>7.2}M",
            self.name,
            self.config.family(),
            size,
            size,
            self.config.param_count() as f64 / 1e6
        )
    }
}

/// Every registered model at its default input size, 5 channels in, one logit out.
pub fn registry() -> Vec<ModelSpec> {
    names().map(|name| ModelSpec { name, config: ModelConfig::from_name(name, None).expect("registered") }).collect()
}

/// A built model of either family.
#[derive(Debug)]
pub enum Model {
    ConvNext(ConvNext),
    Vit(Vit),
}

impl ModuleT for Model {
    /// Features in the caller's precision (autocast or not), then the classifier in float32 with autocast off.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (features, head) = match self {
            Model::ConvNext(m) => (m.features_t(xs, train), m.classifier()),
            Model::Vit(m) => (m.features_t(xs, train), m.classifier()),
        };
        let features = features.to_kind(tch::Kind::Float);
        without_autocast(features.device(), || head.forward(&features))
    }
}
