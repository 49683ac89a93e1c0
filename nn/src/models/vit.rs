//! Vision Transformer (Dosovitskiy et al. 2021) as timm builds it (`timm/models/vision_transformer.py`, defaults:
//! class token, learned position embeddings including the class position, qkv bias, no layer scale, final norm
//! then the class token to the head), every variable named by its timm state_dict key.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::layers::{conv2d, drop_path, drop_path_rates, gelu, layer_norm, linear};

/// The numbers that define a ViT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Input side in pixels; the patch grid and the position embeddings follow from it.
    pub img_size: i64,
    pub patch_size: i64,
    pub embed_dim: i64,
    pub depth: i64,
    pub num_heads: i64,
    pub mlp_ratio: f64,
    pub in_chans: i64,
    pub num_classes: i64,
    pub drop_path_rate: f64,
}

impl VitConfig {
    pub fn new(img_size: i64, patch_size: i64, embed_dim: i64, depth: i64, num_heads: i64) -> Self {
        VitConfig {
            img_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            in_chans: 5,
            num_classes: 1,
            drop_path_rate: 0.0,
        }
    }

    /// Patches per side.
    pub(crate) fn grid(&self) -> i64 {
        self.img_size / self.patch_size
    }

    fn hidden(&self) -> i64 {
        (self.embed_dim as f64 * self.mlp_ratio) as i64
    }

    pub fn param_count(&self) -> i64 {
        let (d, h) = (self.embed_dim, self.hidden());
        let patch = self.in_chans * d * self.patch_size * self.patch_size + d;
        let tokens = d + (self.grid() * self.grid() + 1) * d;
        let block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * h + h) + (h * d + d);
        patch + tokens + self.depth * block + 2 * d + d * self.num_classes + self.num_classes
    }
}

#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    num_heads: i64,
    drop_path: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &VitConfig, drop_path: f64) -> Self {
        let (d, h) = (cfg.embed_dim, cfg.hidden());
        Block {
            norm1: layer_norm(&p / "norm1", d),
            qkv: linear(&p / "attn" / "qkv", d, 3 * d),
            proj: linear(&p / "attn" / "proj", d, d),
            norm2: layer_norm(&p / "norm2", d),
            fc1: linear(&p / "mlp" / "fc1", d, h),
            fc2: linear(&p / "mlp" / "fc2", h, d),
            num_heads: cfg.num_heads,
            drop_path,
        }
    }

    fn attention(&self, xs: &Tensor) -> Tensor {
        let (b, n, d) = xs.size3().expect("tokens are [B, N, D]");
        let qkv = xs.apply(&self.qkv).reshape([b, n, 3, self.num_heads, d / self.num_heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        out.transpose(1, 2).reshape([b, n, d]).apply(&self.proj)
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = xs + drop_path(self.attention(&xs.apply(&self.norm1)), self.drop_path, train);
        let mlp = gelu(&x.apply(&self.norm2).apply(&self.fc1)).apply(&self.fc2);
        &x + drop_path(mlp, self.drop_path, train)
    }
}

/// A ViT classifier.
#[derive(Debug)]
pub struct Vit {
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: nn::Linear,
    img_size: i64,
}

impl Vit {
    pub fn new(p: &nn::Path, cfg: &VitConfig) -> Self {
        let d = cfg.embed_dim;
        let patch_embed = conv2d(p / "patch_embed" / "proj", cfg.in_chans, d, cfg.patch_size, cfg.patch_size, 0, 1);
        // timm: cls_token ~ N(0, 1e-6), pos_embed ~ trunc_normal(0.02).
        let cls_token = p.var("cls_token", &[1, 1, d], nn::Init::Randn { mean: 0.0, stdev: 1e-6 });
        let tokens = cfg.grid() * cfg.grid() + 1;
        let pos_embed = p.var("pos_embed", &[1, tokens, d], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let rates = drop_path_rates(cfg.drop_path_rate, cfg.depth as usize);
        let blocks = (0..cfg.depth).map(|i| Block::new(p / "blocks" / i, cfg, rates[i as usize])).collect();
        Vit {
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            norm: layer_norm(p / "norm", d),
            head: linear(p / "head", d, cfg.num_classes),
            img_size: cfg.img_size,
        }
    }

    /// The classifier: features to one logit per class.
    pub(crate) fn classifier(&self) -> &nn::Linear {
        &self.head
    }

    /// The class token's features after the final norm.
    pub(crate) fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let size = xs.size();
        assert!(
            size[2] == self.img_size && size[3] == self.img_size,
            "this ViT takes {0}x{0} inputs, got {1}x{2}",
            self.img_size,
            size[2],
            size[3]
        );
        let x = xs.apply(&self.patch_embed).flatten(2, 3).transpose(1, 2);
        let b = x.size()[0];
        let kind = x.kind();
        let cls = self.cls_token.to_kind(kind).expand([b, -1, -1], false);
        let mut x = Tensor::cat(&[cls, x], 1) + self.pos_embed.to_kind(kind);
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        x.apply(&self.norm).select(1, 0)
    }
}

impl ModuleT for Vit {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head.forward(&self.features_t(xs, train))
    }
}
