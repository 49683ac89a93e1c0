//! Building blocks shared by the model families, named as timm names them.

use tch::nn::{self, Module};
use tch::Tensor;

/// timm's LayerNorm epsilon for ConvNeXt and ViT (tch defaults to 1e-5).
pub(crate) const LN_EPS: f64 = 1e-6;

/// A LayerNorm over the last dimension with timm's epsilon.
pub(crate) fn layer_norm(p: nn::Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![dim], nn::LayerNormConfig { eps: LN_EPS, ..Default::default() })
}

/// timm's LayerNorm2d: a LayerNorm over the channels of an NCHW tensor.
#[derive(Debug)]
pub(crate) struct LayerNorm2d(pub nn::LayerNorm);

impl LayerNorm2d {
    pub(crate) fn new(p: nn::Path, dim: i64) -> Self {
        LayerNorm2d(layer_norm(p, dim))
    }
}

impl Module for LayerNorm2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.permute([0, 2, 3, 1]).apply(&self.0).permute([0, 3, 1, 2])
    }
}

/// Stochastic depth (timm's DropPath): in training, zero each sample's residual branch with probability `rate` and
/// scale the survivors by 1/(1-rate).
pub fn drop_path(xs: Tensor, rate: f64, train: bool) -> Tensor {
    if !train || rate <= 0.0 {
        return xs;
    }
    let keep = 1.0 - rate;
    let mut shape = vec![xs.size()[0]];
    shape.extend(std::iter::repeat_n(1, xs.dim() - 1));
    let mask = Tensor::empty(shape.as_slice(), (xs.kind(), xs.device())).bernoulli_float_(keep);
    xs * mask / keep
}

/// Per-block drop-path rates rising linearly from 0 to `rate`, as timm schedules them.
pub(crate) fn drop_path_rates(rate: f64, blocks: usize) -> Vec<f64> {
    if blocks <= 1 {
        return vec![0.0; blocks];
    }
    (0..blocks).map(|i| rate * i as f64 / (blocks - 1) as f64).collect()
}

/// timm's init for conv and linear layers: weights from a normal with std 0.02 (timm's `trunc_normal_(std=.02)`
/// truncates at +-2, forty standard deviations out, which never happens), biases zero.
pub(crate) fn timm_init() -> (nn::Init, nn::Init) {
    (nn::Init::Randn { mean: 0.0, stdev: 0.02 }, nn::Init::Const(0.0))
}

/// A conv2d with timm's init.
pub(crate) fn conv2d(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64, groups: i64) -> nn::Conv2D {
    let (ws_init, bs_init) = timm_init();
    let cfg = nn::ConvConfig { stride, padding, groups, ws_init, bs_init, ..Default::default() };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// A linear layer with timm's init.
pub(crate) fn linear(p: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let (ws_init, bs_init) = timm_init();
    nn::linear(p, c_in, c_out, nn::LinearConfig { ws_init, bs_init: Some(bs_init), bias: true })
}

/// GELU with the exact erf form, as torch.nn.GELU() computes by default.
pub(crate) fn gelu(xs: &Tensor) -> Tensor {
    xs.gelu("none")
}

/// The tensor in channels-last memory format (NHWC strides, NCHW shape), what `x.to(memory_format=
/// torch.channels_last)` gives: strides [C*H*W, 1, W*C, C], set explicitly because a permute-contiguous-permute
/// leaves tensors with a size-1 dimension (depthwise conv weights [C, 1, 7, 7]) in strides that oneDNN does not
/// recognise as channels-last. Tensors that are not 4-D come back unchanged.
pub fn to_channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    let s = t.size();
    let strides = [s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]];
    let mut out = Tensor::empty_strided(s.as_slice(), strides.as_slice(), (t.kind(), t.device()));
    tch::no_grad(|| out.copy_(t));
    out
}

/// Converts every 4-D variable of a store to channels-last in place (conv weights), as
/// `model.to(memory_format=torch.channels_last)` does.
pub fn vars_to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, v) in vs.variables() {
            if v.dim() == 4 {
                v.shallow_clone().set_data(&to_channels_last(&v));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn channels_last_strides_are_canonical() {
        let w = Tensor::arange(96 * 49, (Kind::Float, tch::Device::Cpu)).reshape([96, 1, 7, 7]);
        let cl = to_channels_last(&w);
        assert_eq!(cl.stride(), [49, 1, 7, 1]);
        assert!(cl.equal(&w), "same values");
        let x = Tensor::zeros([2, 5, 41, 41], (Kind::Float, tch::Device::Cpu));
        assert_eq!(to_channels_last(&x).stride(), [8405, 1, 205, 5]);
    }
}
