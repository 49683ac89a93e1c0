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

use crate::shim::grad_mode_enabled;

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
        self.forward_by(x, conv_mlp_as_linear(x))
    }

    /// The mixer, a conv_mlp one as linear layers on the NHWC view when `as_linear` (see [`conv_mlp_as_linear`]).
    fn forward_by(&self, x: &Tensor, as_linear: bool) -> Tensor {
        match self {
            Mixer::Conv { norm, fc1, fc2 } if as_linear => {
                let matrix = |conv: &nn::Conv2D| conv.ws.reshape([conv.ws.size()[0], -1]);
                mlp_on_nhwc(x, &norm.0, (&matrix(fc1), fc1.bs.as_ref()), (&matrix(fc2), fc2.bs.as_ref()))
            }
            Mixer::Conv { norm, fc1, fc2 } => gelu(&x.apply(norm).apply(fc1)).apply(fc2),
            Mixer::Linear { norm, fc1, fc2 } => {
                mlp_on_nhwc(x, norm, (&fc1.ws, fc1.bs.as_ref()), (&fc2.ws, fc2.bs.as_ref()))
            }
        }
    }
}

/// LayerNorm, linear, GELU, linear on the NHWC view of an NCHW-shaped map, returned in its shape: a block's mixer
/// computed as timm computes it for convnext_tiny and up. Each layer is a (weight [out, in], bias) pair.
fn mlp_on_nhwc(
    x: &Tensor,
    norm: &nn::LayerNorm,
    fc1: (&Tensor, Option<&Tensor>),
    fc2: (&Tensor, Option<&Tensor>),
) -> Tensor {
    let h = x.permute([0, 2, 3, 1]).apply(norm);
    gelu(&h.linear(fc1.0, fc1.1)).linear(fc2.0, fc2.1).permute([0, 3, 1, 2])
}

/// Whether a conv_mlp block's norm and 1x1 convolutions run as a LayerNorm and linear layers on the NHWC view of a
/// channels-last map (the same function with the same weights and gradients, as the blocks of convnext_tiny and up
/// compute it): in float32 on a CPU, where MKL's matrix products beat oneDNN's 1x1 convolutions on these shapes.
/// Measured on an AMD EPYC (AVX2, 2 threads) for convnext_atto's 20 MLP layers, channels-last: inference at batch
/// 256, 117 ms as convolutions against 100 ms as linear layers (2x on the last stage's 1x1 maps); forward and
/// backward at batch 128, 281 against 206 ms. Autocast and GPUs keep the convolutions (not measured this way).
fn conv_mlp_as_linear(x: &Tensor) -> bool {
    let size = x.size();
    x.device() == tch::Device::Cpu
        && x.kind() == tch::Kind::Float
        && (is_channels_last(x) || size[2] * size[3] == 1)
        && !crate::shim::autocast_enabled(tch::Device::Cpu)
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
        let x = self.mixer.forward(&depthwise_7x7(&self.conv_dw, xs)) * self.gamma.reshape([1, -1, 1, 1]);
        drop_path(x, self.drop_path, train) + xs
    }
}

/// The block's 7x7 depthwise convolution (padding 3), computed the cheapest exact way for the map it is given.
///
/// On an h x w map an output pixel sees inputs at most h-1 rows and w-1 columns away, so on small maps (at 41x41
/// input the stages work at 10x10, 5x5, 2x2 and 1x1) the kernel's outer taps only ever multiply padding, and
/// libtorch's convolutions pay for the whole padded window: with oneDNN on a CPU, their weight gradient on these
/// shapes falls back to im2col and took most of a training step. Here, on a 1x1 map the convolution is one multiply
/// per channel; on a CPU, on the small maps where it is faster (`Depthwise::choose`), a batched matrix product
/// (below); elsewhere a convolution with the kernel cropped to the taps that can meet a pixel. Each is the same
/// function with the same gradients (the unreachable taps' gradient is zero either way), up to the order of the sums.
fn depthwise_7x7(conv: &nn::Conv2D, xs: &Tensor) -> Tensor {
    let size = xs.size();
    let method = Depthwise::choose(xs.device(), size[2], size[3], is_channels_last(xs), grad_mode_enabled());
    depthwise_by(method, conv, xs)
}

/// The ways `depthwise_7x7` computes the convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Depthwise {
    /// One tap per channel (1x1 maps).
    Multiply,
    /// `depthwise_as_matmul` (small maps on a CPU).
    Matmul,
    /// libtorch's convolution with the kernel cropped to the taps in reach (the whole kernel from 4x4 up).
    Cropped,
}

impl Depthwise {
    /// The faster way on a CPU, by map size (pixels), layout and whether autograd records (`recording`: training)
    /// or not (inference: the convolution's slow weight gradient is never paid). Measured with libtorch's kernels on
    /// 40 to 384 channels at batch 128 and 256, matrix product against cropped convolution (AMD EPYC, AVX2):
    /// - training, NCHW: the matrix product 2.3x (10x10) to 8.7x (5x5) faster forward and backward;
    /// - training, channels-last: the matrix product pays a transpose on the way in and out, and at 10x10 the
    ///   convolution is 1.8x faster; at 5x5 and 2x2 the matrix product is still 1.4x to 3x faster;
    /// - inference, NCHW: the matrix product 1.8x faster at 10x10, level at 5x5, 2x slower at 2x2;
    /// - inference, channels-last: the convolution (oneDNN's direct depthwise kernel) 3.5x to 30x faster.
    fn choose(device: tch::Device, h: i64, w: i64, channels_last: bool, recording: bool) -> Self {
        let pixels = h * w;
        let matmul_faster = match (recording, channels_last) {
            (true, false) => pixels <= 100,
            (true, true) => pixels <= 25,
            (false, false) => (26..=100).contains(&pixels),
            (false, true) => false,
        };
        if (h, w) == (1, 1) {
            Depthwise::Multiply
        } else if device == tch::Device::Cpu && matmul_faster {
            Depthwise::Matmul
        } else {
            Depthwise::Cropped
        }
    }
}

fn depthwise_by(method: Depthwise, conv: &nn::Conv2D, xs: &Tensor) -> Tensor {
    let size = xs.size();
    let (h, w) = (size[2], size[3]);
    let bias = |y: Tensor| match &conv.bs {
        Some(bias) => y + bias.reshape([1, -1, 1, 1]),
        None => y,
    };
    match method {
        Depthwise::Multiply => bias(xs * conv.ws.narrow(2, 3, 1).narrow(3, 3, 1).reshape([1, -1, 1, 1])),
        Depthwise::Matmul => bias(depthwise_as_matmul(&conv.ws, xs)),
        Depthwise::Cropped => {
            let (reach_h, reach_w) = ((h - 1).min(3), (w - 1).min(3));
            let taps = conv.ws.narrow(2, 3 - reach_h, 2 * reach_h + 1).narrow(3, 3 - reach_w, 2 * reach_w + 1);
            xs.conv2d(&taps, conv.bs.as_ref(), [1, 1], [reach_h, reach_w], [1, 1], size[1])
        }
    }
}

/// The depthwise convolution (no bias) as one matrix per channel: output pixel o = sum over input pixels i of
/// x[i] * k[o, i], where k[o, i] is the kernel's tap at the offset from o to i, or 0 beyond its reach. The matrices
/// are gathered from the kernel, so the weight gradient flows back through the gather; one batched matrix product
/// over the channels does the rest, and its backward is two more.
fn depthwise_as_matmul(weight: &Tensor, xs: &Tensor) -> Tensor {
    let size = xs.size();
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    let pixels = h * w;
    // Index 49 is a zero appended to the 49 taps: pairs of pixels beyond the kernel's reach.
    let mut index = Vec::with_capacity((pixels * pixels) as usize);
    for (oy, ox) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
        for (iy, ix) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
            let (dy, dx) = (iy - oy, ix - ox);
            index.push(if dy.abs() <= 3 && dx.abs() <= 3 { (dy + 3) * 7 + dx + 3 } else { 49 });
        }
    }
    let taps = Tensor::cat(&[weight.reshape([c, 49]), weight.zeros_like().reshape([c, 49]).narrow(1, 0, 1)], 1);
    let kernel = taps.index_select(1, &Tensor::from_slice(&index).to_device(xs.device())).reshape([c, pixels, pixels]);
    let per_channel = xs.permute([1, 0, 2, 3]).reshape([c, b, pixels]); // [C, B, in]
    let out = per_channel.bmm(&kernel.transpose(1, 2)); // [C, B, out]
    if is_channels_last(xs) {
        // Back to the input's layout: NHWC memory seen as NCHW.
        out.permute([1, 2, 0]).contiguous().view([b, h, w, c]).permute([0, 3, 1, 2])
    } else {
        out.permute([1, 0, 2]).contiguous().view([b, c, h, w])
    }
}

/// Whether a 4-D tensor is laid out channels-last (channels innermost).
fn is_channels_last(xs: &Tensor) -> bool {
    let (size, stride) = (xs.size(), xs.stride());
    size[1] > 1 && stride[1] == 1
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
    pub(crate) fn classifier(&self) -> &nn::Linear {
        &self.head_fc
    }

    /// Pooled, normalised features before the classifier.
    pub(crate) fn features_t(&self, xs: &Tensor, train: bool) -> Tensor {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Each way of computing the depthwise convolution (a multiply on 1x1 maps, the matrix product, the cropped
    /// convolution) against libtorch's full 7x7 one on maps from 1x1 to beyond the kernel's reach: outputs and all
    /// three gradients (input, weight, bias). Both sum the same nonzero
    /// products, in different kernels, so they differ by rounding only: at most 49 products of N(0,1) values, whose
    /// fp32 sums carry relative errors near 1e-6; 1e-4 of the largest value leaves room for any CPU's kernel choice
    /// and still catches a wrong or missing tap (an error the size of one product, about 1e-1 of the scale).
    #[test]
    fn depthwise_equals_the_full_convolution_on_every_map_size() {
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(7);
        for (h, w) in [(1, 1), (2, 2), (3, 3), (1, 3), (2, 4), (5, 5), (10, 10), (12, 9)] {
            for channels_last in [false, true] {
                let vs = nn::VarStore::new(Device::Cpu);
                let conv = conv2d(vs.root() / "conv_dw", 6, 6, 7, 1, 3, 6);
                let mut x = Tensor::randn([4, 6, h, w], opts);
                if channels_last {
                    super::super::layers::vars_to_channels_last(&vs);
                    x = super::super::layers::to_channels_last(&x);
                }
                let (ws, bs) = (conv.ws.shallow_clone(), conv.bs.as_ref().expect("conv_dw has a bias").shallow_clone());
                let x = x.set_requires_grad(true);
                let up = Tensor::randn([4, 6, h, w], opts);
                let run = |y: Tensor| {
                    let mut out = Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &[&x, &ws, &bs], false, false);
                    out.insert(0, y.detach());
                    out
                };
                let full = run(x.apply(&conv));
                let methods = [Depthwise::Multiply, Depthwise::Matmul, Depthwise::Cropped];
                for method in methods.into_iter().filter(|&m| m != Depthwise::Multiply || (h, w) == (1, 1)) {
                    let ours = run(depthwise_by(method, &conv, &x));
                    let names = ["output", "input grad", "weight grad", "bias grad"];
                    for ((name, a), b) in names.iter().zip(&full).zip(&ours) {
                        let scale = a.abs().max().double_value(&[]).max(1e-12);
                        let diff = (a - b).abs().max().double_value(&[]);
                        assert!(
                            diff <= 1e-4 * scale,
                            "{method:?} on {h}x{w}, channels_last={channels_last}: {name} differs by {diff} (scale {scale})"
                        );
                    }
                    if method == Depthwise::Matmul {
                        let layout = |t: &Tensor| is_channels_last(t);
                        assert_eq!(layout(&ours[0]), layout(&full[0]), "{h}x{w}: the output keeps the input's layout");
                    }
                }
            }
        }
    }

    /// A conv_mlp block's mixer as linear layers on the NHWC view against its 1x1 convolutions, at each of
    /// convnext_atto's widths and map sizes: the same products in other kernels (MKL's against oneDNN's), so they
    /// differ by float32 rounding only (sums of at most 4 x 320 products of values near 1 with weights of scale 0.1:
    /// errors near 1e-6 of outputs near 1); 1e-4 leaves room for any CPU's kernels and catches a wrong weight
    /// layout or a missing bias (errors of the outputs' own size). Also which way `forward` takes.
    #[test]
    fn conv_mlp_as_linear_layers_equals_the_convolutions() {
        tch::manual_seed(5);
        // A conv_mlp mixer of `c` channels with every weight drawn from N(0, 0.1^2), its convolutions channels-last.
        let random_mixer = |c: i64| {
            let vs = nn::VarStore::new(Device::Cpu);
            let mixer = Mixer::new(&(vs.root() / "block"), c, true);
            tch::no_grad(|| {
                for (_, v) in vs.variables() {
                    let _ = v.shallow_clone().normal_(0.0, 0.1);
                }
            });
            super::super::layers::vars_to_channels_last(&vs);
            (vs, mixer)
        };
        for (c, hw) in [(40, 10), (80, 5), (160, 2), (320, 1)] {
            let (_vs, mixer) = random_mixer(c);
            let x = super::super::layers::to_channels_last(&Tensor::randn([8, c, hw, hw], (Kind::Float, Device::Cpu)));
            let (conv, linear) = crate::shim::inference_mode(|| {
                assert!(conv_mlp_as_linear(&x), "float32 channels-last on a CPU takes the linear layers");
                (mixer.forward_by(&x, false), mixer.forward_by(&x, true))
            });
            assert_eq!(conv.size(), linear.size());
            let diff = (&conv - &linear).abs().max().double_value(&[]);
            assert!(diff <= 1e-4, "{c} channels at {hw}x{hw}: differs by {diff}");
            assert_eq!(is_channels_last(&linear), is_channels_last(&conv), "the output keeps the layout");
        }
        // Training takes them too, with the convolutions' gradients; an NCHW map larger than 1x1 keeps the
        // convolutions, and so does autocast.
        let (vs, mixer) = random_mixer(8);
        let x = Tensor::randn([2, 8, 3, 3], (Kind::Float, Device::Cpu));
        let xl = super::super::layers::to_channels_last(&x).set_requires_grad(true);
        assert!(conv_mlp_as_linear(&xl), "recording autograd too");
        let up = super::super::layers::to_channels_last(&Tensor::randn([2, 8, 3, 3], (Kind::Float, Device::Cpu)));
        let vars: Vec<Tensor> = vs.trainable_variables();
        let grads = |as_linear: bool| {
            let y = mixer.forward_by(&xl, as_linear);
            let mut inputs: Vec<&Tensor> = vars.iter().collect();
            inputs.push(&xl);
            Tensor::run_backward(&[(&y * &up).sum(Kind::Float)], &inputs, false, false)
        };
        for (a, b) in grads(false).iter().zip(&grads(true)) {
            let scale = a.abs().max().double_value(&[]).max(1e-12);
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff <= 1e-4 * scale, "a gradient differs by {diff} (scale {scale})");
        }
        assert!(!conv_mlp_as_linear(&x), "NCHW");
        assert!(!crate::shim::autocast(Device::Cpu, crate::shim::AutocastDtype::BFloat16, || conv_mlp_as_linear(&xl)));
    }
}
