//! One optimisation step: the forward and backward pass of the loss, the parameter groups, the global gradient norm
//! and its clipping, the loss-scaled AdamW step, and the validation loss. Training and autotune's timing run the same
//! functions, so that auto settings are chosen on the step that training then runs.

use anyhow::Result;
use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Reduction, Tensor};

use super::scaler::GradScaler;
use crate::device::{in_precision, to_model_input, Precision};
use crate::models::Model;
use crate::optim::AdamW;

/// How a training step runs the model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepSettings<'a> {
    pub precision: Precision,
    pub channels_last: bool,
    /// The model's input side (batches are resized to it).
    pub input_size: i64,
    pub pos_weight: Option<&'a Tensor>,
    /// The focal loss exponent (None: plain BCE).
    pub focal_gamma: Option<f64>,
    /// The labels' smoothing epsilon (None: the labels as they are; [`smooth_labels`]).
    pub label_smoothing: Option<f64>,
}

/// The forward and backward pass of BCE-with-logits (or its focal form, [`loss_of_logits`]) on images `x`
/// [B, 5, H, W] and labels `y` [B], the loss scaled by `loss_scale` before the backward pass (fp16); the gradients
/// are added into the parameters. Returns the unscaled mean loss (a float32 scalar on the device: reading it waits
/// for the device).
pub(crate) fn forward_backward(model: &Model, x: &Tensor, y: &Tensor, s: &StepSettings, loss_scale: f64) -> Tensor {
    let device = x.device();
    let x = to_model_input(x.shallow_clone(), s.input_size, s.channels_last);
    let logits = in_precision(s.precision, device, || model.forward_t(&x, true)).squeeze_dim(1).to_kind(Kind::Float);
    let smoothed = s.label_smoothing.map(|e| smooth_labels(y, e));
    let loss = loss_of_logits(&logits, smoothed.as_ref().unwrap_or(y), s.pos_weight, s.focal_gamma);
    if loss_scale == 1.0 {
        loss.backward();
    } else {
        (&loss * loss_scale).backward();
    }
    loss
}

/// Labels `y` (0 or 1) smoothed by `epsilon`: 1 - epsilon/2 for a lens, epsilon/2 for a non-lens, the targets the
/// training loss then pulls the probabilities towards instead of 0 and 1, so that the images already ranked right
/// stop pulling their logits further out.
pub(crate) fn smooth_labels(y: &Tensor, epsilon: f64) -> Tensor {
    y * (1.0 - epsilon) + epsilon / 2.0
}

/// The mean training loss of `logits` against labels `y`: BCE-with-logits with the positive class weighted by
/// `pos_weight`; with `focal_gamma` = g each object's term is multiplied by (1 - p_t)^g, p_t = sigmoid(logit) for a
/// lens and 1 - sigmoid(logit) for a non-lens, as torchvision's sigmoid_focal_loss (no alpha: --pos-weight is the
/// class weight), the factor differentiated with the rest. The factor is exp(g log(1 - p_t)) with the logarithm taken
/// as log-sigmoid of the logit: finite with a finite gradient for every logit and every g >= 0, where (1 - p_t)^g
/// of a saturated sigmoid (1 - p_t = 0 in float32) would have an infinite derivative for g < 1.
pub(crate) fn loss_of_logits(
    logits: &Tensor,
    y: &Tensor,
    pos_weight: Option<&Tensor>,
    focal_gamma: Option<f64>,
) -> Tensor {
    let pos_weight = pos_weight.map(Tensor::shallow_clone);
    match focal_gamma {
        None => logits.binary_cross_entropy_with_logits(y, None::<Tensor>, pos_weight, Reduction::Mean),
        Some(g) => {
            let bce = logits.binary_cross_entropy_with_logits(y, None::<Tensor>, pos_weight, Reduction::None);
            // 1 - p_t = sigmoid(s), s = logit (1 - 2y): sigmoid(logit) for a non-lens, sigmoid(-logit) for a lens.
            let s: Tensor = logits * (1.0 - y * 2.0);
            (bce * (s.log_sigmoid() * g).exp()).mean(logits.kind())
        }
    }
}

/// The parameters to optimise, sorted by name, with their weight decay: `weight_decay`, or 0 for 1-D tensors
/// (norms, biases, layer scales) and the ViT position embedding and class token when `no_decay_norm_bias`.
pub(crate) fn param_groups(vs: &VarStore, weight_decay: f64, no_decay_norm_bias: bool) -> Vec<(String, Tensor, f64)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(name, t)| {
            let no_decay = no_decay_norm_bias && (t.dim() <= 1 || name == "pos_embed" || name == "cls_token");
            let wd = if no_decay { 0.0 } else { weight_decay };
            (name, t, wd)
        })
        .collect()
}

/// The global gradient norm, with clipping to `max_norm` (torch.nn.utils.clip_grad_norm_), after dividing the
/// gradients by `unscale` (fp16's loss scale). Returns the norm before clipping, a float32 scalar on the device
/// (inf/NaN when a gradient is not finite); nothing here waits for the device.
fn grad_norm_and_clip(opt: &AdamW, max_norm: Option<f64>, unscale: f64) -> Option<Tensor> {
    tch::no_grad(|| {
        let mut grads: Vec<Tensor> = opt.slots.iter().map(|s| s.param.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return None;
        }
        if unscale != 1.0 {
            for g in &mut grads {
                let _ = g.g_mul_scalar_(1.0 / unscale);
            }
        }
        let norm = crate::shim::total_norm(&grads);
        if let Some(max) = max_norm {
            // max / (norm + 1e-6) where the norm is finite and above max, else 1, in float64 as a host scalar would
            // be (the gradients are then multiplied in their own precision, as by a scalar).
            let norm64 = norm.to_kind(Kind::Double);
            let clip = norm64.isfinite().logical_and(&norm64.gt(max));
            let factor = (max / (&norm64 + 1e-6)).where_self(&clip, &Tensor::ones_like(&norm64));
            crate::shim::foreach_mul_(&grads, &factor);
        }
        Some(norm)
    })
}

/// Unscales (fp16), checks, clips and applies the gradients in the parameters. Returns `found_inf`, a float32
/// scalar on the device that holds 1 where a gradient was not finite and the step was skipped there (weights,
/// moments and step count untouched), without waiting for the device; with a loss scaler (fp16) the scale is
/// updated on the host as GradScaler does (lowered after a skipped step), which reads `found_inf` back. Fails where
/// the optimizer refuses its tensors.
pub(crate) fn optimizer_step(
    opt: &mut AdamW,
    scaler: Option<&mut GradScaler>,
    clip: Option<f64>,
    lr: f64,
) -> Result<Option<Tensor>> {
    let scale = scaler.as_ref().map_or(1.0, |s| s.scale);
    let Some(norm) = grad_norm_and_clip(opt, clip, scale) else { return Ok(None) };
    let found_inf = norm.isfinite().logical_not().to_kind(Kind::Float);
    opt.step_unless(lr, Some(&found_inf))?;
    if let Some(s) = scaler {
        s.update(found_inf.double_value(&[]) == 0.0);
    }
    Ok(Some(found_inf))
}

/// The mean binary cross-entropy of logits against labels, with the positive class weighted by `pos_weight`, as
/// torch's binary_cross_entropy_with_logits computes it.
pub(crate) fn bce_mean(logits: &[f64], labels: &[u8], pos_weight: f64) -> f64 {
    let sum: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let log1p_exp_neg_abs = (-x.abs()).exp().ln_1p();
            // -[w y log s(x) + (1-y) log(1-s(x))], written without overflow.
            let log_sig = -(log1p_exp_neg_abs + (-x).max(0.0));
            let log_one_minus = -(log1p_exp_neg_abs + x.max(0.0));
            -(pos_weight * f64::from(y) * log_sig + (1.0 - f64::from(y)) * log_one_minus)
        })
        .sum();
    sum / logits.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_loss_scaling_skips_a_step_with_an_inf_gradient() {
        let w = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 0.0)], 0.9, 0.999, 1e-8);
        let mut scaler = GradScaler::default();
        // A scaled loss whose gradient overflows: d/dw (w * inf).sum() = inf.
        (&w * f64::INFINITY).sum(Kind::Float).backward();
        let skipped = |inf: Option<Tensor>| inf.unwrap().double_value(&[]) == 1.0;
        assert!(skipped(optimizer_step(&mut opt, Some(&mut scaler), None, 0.1).unwrap()), "step skipped");
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [1.0, 2.0], "weights untouched");
        assert_eq!(scaler.scale, 32768.0, "scale halved");
        assert_eq!(opt.steps_taken(), 0);
        assert!(opt.slots[0].exp_avg.equal(&Tensor::zeros([2], (Kind::Float, tch::Device::Cpu))), "moments too");
        // A finite, scaled gradient is unscaled before the update: the step equals the unscaled one.
        opt.zero_grad();
        (&w * scaler.scale).sum(Kind::Float).backward();
        assert!(!skipped(optimizer_step(&mut opt, Some(&mut scaler), None, 0.1).unwrap()));
        assert_eq!(opt.steps_taken(), 1);
        let got = Vec::<f32>::try_from(&w).unwrap();
        // First AdamW step moves each weight by lr * sign(grad) (m/sqrt(v) = 1 after bias correction); the
        // gradient here is exactly 1 per weight, far from rounding level, so 1e-5 is float32 rounding of 0.9/1.9.
        assert!((got[0] - 0.9).abs() < 1e-5 && (got[1] - 1.9).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn validation_loss_matches_torch() {
        let logits = [2.0, -1.0, 0.5, -30.0, 40.0];
        let labels = [1u8, 0, 0, 1, 0];
        let t = Tensor::from_slice(&logits).binary_cross_entropy_with_logits::<Tensor>(
            &Tensor::from_slice(&labels.map(f64::from)),
            None,
            None,
            Reduction::Mean,
        );
        // Both in float64 with the same formula up to summation order: 1e-12 is a few ulps of a loss of ~20.
        assert!((bce_mean(&logits, &labels, 1.0) - t.double_value(&[])).abs() < 1e-12);
    }

    #[test]
    fn smoothed_labels_are_the_targets_of_the_loss_and_its_minimum_is_inside() {
        let labels = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 1.0]);
        let t = smooth_labels(&labels, 0.1);
        let got: Vec<f64> = (0..4).map(|i| t.double_value(&[i])).collect();
        // float64 arithmetic on 0.9 and 0.05: within a few ulps of the exact 0.95 and 0.05.
        for (g, want) in got.iter().zip([0.95, 0.05, 0.95, 0.95]) {
            assert!((g - want).abs() < 1e-15, "{got:?}");
        }
        // BCE against the smoothed targets: -(t log p + (1 - t) log(1 - p)) averaged, by hand in float64 (1e-12:
        // rounding of four terms of order 1).
        let logits = [2.0, -2.0, 0.5, 8.0];
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want =
            logits.iter().zip(&got).map(|(&x, &t)| -(t * sig(x).ln() + (1.0 - t) * (1.0 - sig(x)).ln())).sum::<f64>()
                / 4.0;
        let x = Tensor::from_slice(&logits).set_requires_grad(true);
        let loss = loss_of_logits(&x, &t, None, None);
        assert!((loss.double_value(&[]) - want).abs() < 1e-12);
        // The gradient of each term is (sigmoid(x) - t) / 4: a lens at logit 2 is still pulled up, but a lens
        // already at logit 8 is pushed back towards log(0.95 / 0.05) = 2.94, where plain BCE would pull it further.
        loss.backward();
        let grad = x.grad();
        for (i, (&xi, &ti)) in logits.iter().zip(&got).enumerate() {
            assert!((grad.double_value(&[i as i64]) - (sig(xi) - ti) / 4.0).abs() < 1e-12);
        }
        assert!(grad.double_value(&[0]) < 0.0 && grad.double_value(&[3]) > 0.0);
    }

    #[test]
    fn focal_loss_weights_each_term_by_the_miss_probability_to_the_gamma() {
        let logits = [2.0, -1.0, 0.5, -3.0, 0.0];
        let labels = [1u8, 0, 0, 1, 1];
        let (x, y) = (Tensor::from_slice(&logits), Tensor::from_slice(&labels.map(f64::from)));
        let w = Tensor::from_slice(&[2.5f64]);
        let value = |t: Tensor| t.double_value(&[]);
        // gamma 0 is BCE itself, with and without a class weight.
        for pw in [None, Some(&w)] {
            let plain = value(loss_of_logits(&x, &y, pw, None));
            assert!((value(loss_of_logits(&x, &y, pw, Some(0.0))) - plain).abs() < 1e-12);
        }
        // Each term by hand in float64: w_y BCE (1 - p_t)^2, p = sigmoid(x); 1e-12 is float64 rounding of a sum of
        // five terms of order 1.
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want: f64 = logits
            .iter()
            .zip(labels)
            .map(|(&x, y)| {
                let (p, lens) = (sig(x), y == 1);
                let bce = if lens { -2.5 * p.ln() } else { -(1.0 - p).ln() };
                bce * (if lens { 1.0 - p } else { p }).powi(2)
            })
            .sum::<f64>()
            / 5.0;
        assert!((value(loss_of_logits(&x, &y, Some(&w), Some(2.0))) - want).abs() < 1e-12);
        // An object ranked right counts less than in BCE, relatively more so the surer the model is.
        let one = |x: f64, g| value(loss_of_logits(&Tensor::from_slice(&[x]), &Tensor::from_slice(&[1.0]), None, g));
        assert!(one(3.0, Some(2.0)) / one(3.0, None) < one(1.0, Some(2.0)) / one(1.0, None));
        // Saturated in float32 (sigmoid(40) is 1 exactly there), the gradient stays finite for every gamma, below 1
        // too.
        for g in [0.5, 1.0, 2.0] {
            let x = Tensor::from_slice(&[40.0f32, -40.0]).set_requires_grad(true);
            let loss = loss_of_logits(&x, &Tensor::from_slice(&[1.0f32, 0.0]), None, Some(g));
            loss.backward();
            let grad = Vec::<f32>::try_from(&x.grad()).unwrap();
            assert!(grad.iter().all(|d| d.is_finite()), "gamma {g}: {grad:?}");
        }
    }

    #[test]
    fn norms_and_biases_skip_decay_only_when_asked() {
        let vs = VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let _w = (&root / "fc").var("weight", &[3, 2], tch::nn::Init::Const(0.0));
        let _b = (&root / "fc").var("bias", &[3], tch::nn::Init::Const(0.0));
        let _p = root.var("pos_embed", &[1, 5, 2], tch::nn::Init::Const(0.0));
        let decay =
            |groups: Vec<(String, Tensor, f64)>| groups.into_iter().map(|(n, _, wd)| (n, wd)).collect::<Vec<_>>();
        assert_eq!(
            decay(param_groups(&vs, 0.05, true)),
            [("fc.bias".to_string(), 0.0), ("fc.weight".to_string(), 0.05), ("pos_embed".to_string(), 0.0)]
        );
        assert!(decay(param_groups(&vs, 0.05, false)).iter().all(|(_, wd)| *wd == 0.05));
    }
}
