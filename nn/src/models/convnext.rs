//! ConvNeXt (Liu et al. 2022) as timm builds it (`timm/models/convnext.py`), with every variable named by its timm
//! state_dict key, so a timm checkpoint loads without a rename table.
//!
//! stem.0 (conv 4x4 stride 4), stem.1 (LayerNorm2d); stages.{i}.downsample.{0,1} (LayerNorm2d, conv 2x2 stride 2)
//! for i > 0; stages.{i}.blocks.{j}: conv_dw (7x7 depthwise), norm, mlp.fc1, mlp.fc2, gamma (layer scale);
//! head.norm, head.fc. With `conv_mlp` (atto to nano) the MLP is 1x1 convolutions on NCHW and the norm a
//! LayerNorm2d; otherwise the block permutes to NHWC for a LayerNorm and linear layers.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::layers::{conv2d, drop_path, drop_path_rates, gelu, layer_norm, linear, LayerNorm2d};

/// The numbers that define a ConvNeXt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvNextConfig {
    pub depths: Vec<i64>,
    pub dims: Vec<i64>,
    /// 1x1-conv MLP on NCHW (timm's conv_mlp=True, used by atto, femto, pico, nano).
    pub conv_mlp: bool,
    pub in_chans: i64,
    pub num_classes: i64,
    /// Stochastic depth rate of the last block (linear from 0).
    pub drop_path_rate: f64,
    /// Initial layer-scale value (timm: 1e-6).
    pub ls_init_value: f64,
}

impl ConvNextConfig {
    pub fn new(depths: &[i64], dims: &[i64], conv_mlp: bool) -> Self {
        ConvNextConfig {
            depths: depths.to_vec(),
            dims: dims.to_vec(),
            conv_mlp,
            in_chans: 5,
            num_classes: 1,
            drop_path_rate: 0.0,
            ls_init_value: 1e-6,
        }
    }

    /// Number of parameters, counted from the shapes (no weights are made).
    pub fn param_count(&self) -> i64 {
        let d0 = self.dims[0];
        let mut n = self.in_chans * d0 * 16 + d0 + 2 * d0; // stem conv + LayerNorm2d
        for (i, (&depth, &dim)) in self.depths.iter().zip(&self.dims).enumerate() {
            if i > 0 {
                let prev = self.dims[i - 1];
                n += 2 * prev + prev * dim * 4 + dim;
            }
            let block = dim * 49 + dim + 2 * dim + (dim * 4 * dim + 4 * dim) + (4 * dim * dim + dim) + dim;
            n += depth * block;
        }
        let last = *self.dims.last().expect("at least one stage");
        n + 2 * last + last * self.num_classes + self.num_classes
    }
}

/// The norm and MLP of a block, which come in pairs: a LayerNorm2d and 1x1 convolutions on NCHW (timm's
/// conv_mlp), or a channels-last LayerNorm and linear layers.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per block, built once: boxing buys nothing
enum Mixer {
    Conv { norm: LayerNorm2d, fc1: nn::Conv2D, fc2: nn::Conv2D },
    Linear { norm: nn::LayerNorm, fc1: nn::Linear, fc2: nn::Linear },
}

impl Mixer {
    fn new(p: &nn::Path, dim: i64, conv_mlp: bool) -> Self {
        let norm = p / "norm";
        let (fc1, fc2) = (p / "mlp" / "fc1", p / "mlp" / "fc2");
        if conv_mlp {
            Mixer::Conv {
                norm: LayerNorm2d::new(norm, dim),
                fc1: conv2d(fc1, dim, 4 * dim, 1, 1, 0, 1),
                fc2: conv2d(fc2, 4 * dim, dim, 1, 1, 0, 1),
            }
        } else {
            Mixer::Linear {
                norm: layer_norm(norm, dim),
                fc1: linear(fc1, dim, 4 * dim),
                fc2: linear(fc2, 4 * dim, dim),
            }
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Mixer::Conv { norm, fc1, fc2 } => gelu(&x.apply(norm).apply(fc1)).apply(fc2),
            Mixer::Linear { norm, fc1, fc2 } => {
                gelu(&x.permute([0, 2, 3, 1]).apply(norm).apply(fc1)).apply(fc2).permute([0, 3, 1, 2])
            }
        }
    }
}

#[derive(Debug)]
struct Block {
    conv_dw: nn::Conv2D,
    mixer: Mixer,
    gamma: Tensor,
    drop_path: f64,
}

impl Block {
    fn new(p: nn::Path, dim: i64, conv_mlp: bool, ls_init: f64, drop_path: f64) -> Self {
        let conv_dw = conv2d(&p / "conv_dw", dim, dim, 7, 1, 3, dim);
        let mixer = Mixer::new(&p, dim, conv_mlp);
        let gamma = p.var("gamma", &[dim], nn::Init::Const(ls_init));
        Block { conv_dw, mixer, gamma, drop_path }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.mixer.forward(&xs.apply(&self.conv_dw)) * self.gamma.reshape([1, -1, 1, 1]);
        drop_path(x, self.drop_path, train) + xs
    }
}

#[derive(Debug)]
struct Stage {
    downsample: Option<(LayerNorm2d, nn::Conv2D)>,
    blocks: Vec<Block>,
}

/// A ConvNeXt classifier.
#[derive(Debug)]
pub struct ConvNext {
    stem: (nn::Conv2D, LayerNorm2d),
    stages: Vec<Stage>,
    head_norm: nn::LayerNorm,
    head_fc: nn::Linear,
}

impl ConvNext {
    pub fn new(p: &nn::Path, cfg: &ConvNextConfig) -> Self {
        let d0 = cfg.dims[0];
        let stem = (conv2d(p / "stem" / "0", cfg.in_chans, d0, 4, 4, 0, 1), LayerNorm2d::new(p / "stem" / "1", d0));
        let total: usize = cfg.depths.iter().map(|&d| d as usize).sum();
        let rates = drop_path_rates(cfg.drop_path_rate, total);
        let mut k = 0;
        let mut stages = Vec::new();
        for (i, (&depth, &dim)) in cfg.depths.iter().zip(&cfg.dims).enumerate() {
            let sp = p / "stages" / i;
            let downsample = (i > 0).then(|| {
                let prev = cfg.dims[i - 1];
                (
                    LayerNorm2d::new(&sp / "downsample" / "0", prev),
                    conv2d(&sp / "downsample" / "1", prev, dim, 2, 2, 0, 1),
                )
            });
            let blocks = (0..depth)
                .map(|j| {
                    k += 1;
                    Block::new(&sp / "blocks" / j, dim, cfg.conv_mlp, cfg.ls_init_value, rates[k - 1])
                })
                .collect();
            stages.push(Stage { downsample, blocks });
        }
        let last = *cfg.dims.last().expect("at least one stage");
        let head_norm = layer_norm(p / "head" / "norm", last);
        let head_fc = linear(p / "head" / "fc", last, cfg.num_classes);
        ConvNext { stem, stages, head_norm, head_fc }
    }

    /// The classifier: features to one logit per class.
    pub fn classifier(&self) -> &nn::Linear {
        &self.head_fc
    }

    /// Pooled, normalised features before the classifier.
    pub fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.apply(&self.stem.0).apply(&self.stem.1);
        for stage in &self.stages {
            if let Some((norm, conv)) = &stage.downsample {
                x = x.apply(norm).apply(conv);
            }
            for block in &stage.blocks {
                x = block.forward_t(&x, train);
            }
        }
        x.mean_dim([2i64, 3].as_slice(), false, None).apply(&self.head_norm)
    }
}

impl ModuleT for ConvNext {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head_fc.forward(&self.features_t(xs, train))
    }
}
