//! AdamW whose state we own (tch cannot save an optimizer's moments, and an exact resume needs them).
//!
//! The update is libtorch's fused AdamW kernel (what `torch.optim.AdamW(fused=True)` runs), one call per weight-
//! decay group, on moments we hold: decoupled weight decay `p *= 1 - lr*wd`, `m = b1 m + (1-b1) g`,
//! `v = b2 v + (1-b2) g^2`, `p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`. One pass over memory instead of
//! eight separate tensor ops per parameter (a 28M-parameter model moves ~1 GB less per step).

use tch::Tensor;

/// One optimised tensor and its moments.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub param: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    /// Weight decay for this tensor (0 for norms, biases, ... when the run asks so).
    pub weight_decay: f64,
}

/// The AdamW optimizer.
#[derive(Debug)]
pub struct AdamW {
    pub slots: Vec<Slot>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken (the `t` of the bias corrections), a float32 scalar on the parameters' device: counted there, so
    /// that a step skipped on the device (its gradients not finite) is not counted, without a round trip to the host.
    /// Read it with [`AdamW::steps_taken`].
    step: Tensor,
    /// The learning rate of the next step, a float32 scalar on the parameters' device that the kernel reads when it
    /// runs: a step queued (or captured) once can run at another rate by filling it.
    lr: Tensor,
}

impl AdamW {
    /// `params`: (name, tensor, weight decay) for every tensor to optimise.
    pub fn new(params: Vec<(String, Tensor, f64)>, beta1: f64, beta2: f64, eps: f64) -> AdamW {
        let slots: Vec<Slot> = params
            .into_iter()
            .map(|(name, param, weight_decay)| {
                let exp_avg = param.zeros_like().detach();
                let exp_avg_sq = param.zeros_like().detach();
                Slot { name, param, exp_avg, exp_avg_sq, weight_decay }
            })
            .collect();
        let device = slots.first().map_or(tch::Device::Cpu, |s: &Slot| s.param.device());
        let step = Tensor::zeros([], (tch::Kind::Float, device));
        let lr = Tensor::zeros([], (tch::Kind::Float, device));
        AdamW { slots, beta1, beta2, eps, step, lr }
    }

    /// Steps taken so far (reading it waits for the device).
    pub(crate) fn steps_taken(&self) -> i64 {
        self.step.double_value(&[]) as i64
    }

    /// Sets the count of steps taken (from a checkpoint).
    pub(crate) fn set_steps_taken(&mut self, steps: i64) {
        let _ = self.step.fill_(steps as f64);
    }

    /// Drops the gradients (PyTorch's zero_grad(set_to_none=True)).
    pub fn zero_grad(&mut self) {
        for s in &self.slots {
            crate::shim::reset_grad(&s.param);
        }
    }

    /// One update at learning rate `lr` with the gradients currently in the parameters. Tensors without a
    /// gradient are left alone, as PyTorch does. Fails, the weights untouched, where the kernel refuses its
    /// arguments (the shim checks what CUDA's kernel checks, on every device: one dtype and device, and the same
    /// strides for a parameter, its gradient and its moments).
    pub fn step(&mut self, lr: f64) -> anyhow::Result<()> {
        self.step_unless(lr, None)
    }

    /// [`AdamW::step`], skipped on the device where `found_inf` (a float32 scalar there) holds 1: weights, moments
    /// and the step count stay as they were, and the host never waits for the decision.
    pub(crate) fn step_unless(&mut self, lr: f64, found_inf: Option<&Tensor>) -> anyhow::Result<()> {
        let mut groups: Vec<(f64, crate::shim::AdamWGroup)> = Vec::new();
        for s in &self.slots {
            let grad = s.param.grad();
            if !grad.defined() {
                continue;
            }
            let k = match groups.iter().position(|(wd, _)| *wd == s.weight_decay) {
                Some(k) => k,
                None => {
                    let empty = crate::shim::AdamWGroup {
                        params: vec![],
                        grads: vec![],
                        exp_avgs: vec![],
                        exp_avg_sqs: vec![],
                        steps: vec![],
                    };
                    groups.push((s.weight_decay, empty));
                    groups.len() - 1
                }
            };
            let g = &mut groups[k].1;
            g.params.push(&s.param);
            g.grads.push(grad);
            g.exp_avgs.push(&s.exp_avg);
            g.exp_avg_sqs.push(&s.exp_avg_sq);
            // One step tensor for all: the kernel only reads it.
            g.steps.push(self.step.shallow_clone());
        }
        tch::no_grad(|| {
            // Filled on the device's queue, without waiting for it. Held in float32, what CUDA's kernel reads from a
            // tensor: every device applies the rate rounded to float32 (a relative change below 6e-8 from the
            // float64 given), as torch.optim's tensor learning rates do.
            let _ = self.lr.fill_(lr);
            // Counted before the kernel reads it, as torch.optim does, and taken back when the step is skipped.
            let _ = self.step.g_add_scalar_(1.0);
            for (wd, g) in &groups {
                crate::shim::fused_adamw(g, &self.lr, self.beta1, self.beta2, *wd, self.eps, found_inf)
                    .map_err(|e| anyhow::anyhow!("fused AdamW (weight decay {wd}): {e}"))?;
            }
            if let Some(inf) = found_inf {
                let _ = self.step.g_sub_(inf);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layers::to_channels_last;
    use tch::{Device, Kind};

    /// A parameter [2, 3, 4, 5] with a gradient, laid out contiguous or channels-last, both with the same values.
    fn param(channels_last: bool) -> (Tensor, Tensor) {
        let w = Tensor::arange(120, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]) / 100.0;
        let g = (Tensor::arange(120, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]) * 0.37).sin();
        let (w, g) = if channels_last { (to_channels_last(&w), to_channels_last(&g)) } else { (w, g) };
        (w.set_requires_grad(true), g)
    }

    fn step_with(w: &Tensor, g: &Tensor, opt: &mut AdamW) -> anyhow::Result<()> {
        opt.zero_grad();
        (w * g).sum(Kind::Float).backward();
        opt.step(1e-2)
    }

    #[test]
    fn the_learning_rate_is_a_float32_tensor_read_when_the_kernel_runs() {
        // One group by hand, the rate in a tensor filled after the group was put together.
        let (w, g) = param(false);
        let (m, v) = (w.zeros_like(), w.zeros_like());
        let step = Tensor::ones([], (Kind::Float, Device::Cpu));
        let group = |grad: &Tensor| crate::shim::AdamWGroup {
            params: vec![&w],
            grads: vec![grad.shallow_clone()],
            exp_avgs: vec![&m],
            exp_avg_sqs: vec![&v],
            steps: vec![step.shallow_clone()],
        };
        let lr = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let _ = lr.shallow_clone().fill_(0.25);
        let before = w.detach().copy();
        tch::no_grad(|| crate::shim::fused_adamw(&group(&g), &lr, 0.9, 0.999, 0.0, 1e-8, None)).unwrap();
        // AdamW's first step moves each weight by lr * g / (|g| + eps/...) = lr * sign(g) but where |g| is near eps:
        // the gradients here are sin(0.37 k), at least 3e-3 away from 0 but for k = 0; 1e-5 relative is float32
        // rounding of the weights (|w| <= 1.2) against a move of 0.25.
        let moved = (&before - w.detach()).abs();
        let nonzero = g.abs().gt(1e-6);
        let expected = nonzero.to_kind(Kind::Float) * 0.25;
        assert!((moved - expected).abs().max().double_value(&[]) < 1e-5 * 1.2 / 0.25, "the rate the tensor held");

        // What CUDA's kernel reads (a float on the parameters' device) is checked on every device.
        for bad in [Tensor::from(0.25f64), Tensor::from_slice(&[0.25f32, 0.25])] {
            let before = w.detach().copy();
            let e =
                tch::no_grad(|| crate::shim::fused_adamw(&group(&g), &bad, 0.9, 0.999, 0.0, 1e-8, None)).unwrap_err();
            assert!(e.contains("lr must be a float32 scalar tensor on the parameters' device"), "{e}");
            assert!(w.equal(&before), "weights untouched");
        }
    }

    #[test]
    fn moments_with_other_strides_than_their_parameter_are_refused_as_cuda_refuses_them() {
        // What lens-train did in channels-last before the moments followed their parameters: moments made while
        // the parameter was contiguous, the parameter then made channels-last. CUDA's kernel refused it; the CPU's
        // ran it, pairing moment and parameter by memory position. The shim refuses it on every device.
        let (w, g) = param(false);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 0.01)], 0.9, 0.999, 1e-8);
        tch::no_grad(|| w.shallow_clone().set_data(&to_channels_last(&w)));
        let before = w.copy();
        let e = step_with(&w, &to_channels_last(&g), &mut opt).unwrap_err().to_string();
        assert!(e.contains("must have same dtype, device, and layout"), "{e}");
        assert!(!e.contains("frame #"), "one message, no backtrace: {e}");
        assert!(w.equal(&before), "weights untouched");
    }

    #[test]
    fn channels_last_steps_update_each_element_as_contiguous_ones_do() {
        let (wc, g) = param(false);
        let (wl, gl) = param(true);
        let mut contiguous = AdamW::new(vec![("w".into(), wc.shallow_clone(), 0.01)], 0.9, 0.999, 1e-8);
        let mut channels_last = AdamW::new(vec![("w".into(), wl.shallow_clone(), 0.01)], 0.9, 0.999, 1e-8);
        assert_eq!(channels_last.slots[0].exp_avg.stride(), wl.stride(), "moments take the parameter's strides");
        for _ in 0..3 {
            step_with(&wc, &g, &mut contiguous).unwrap();
            step_with(&wl, &gl, &mut channels_last).unwrap();
        }
        // The same float32 arithmetic per element, in another order in memory (vectorised lanes against a scalar
        // tail may round once differently): 1e-6 relative is a few ulps of weights and moments of order 0.1-1.
        let close = |a: &Tensor, b: &Tensor| {
            let scale = f64::max(b.abs().max().double_value(&[]), 1e-12);
            (a - b).abs().max().double_value(&[]) <= 1e-6 * scale
        };
        assert!(close(&wl, &wc), "weights");
        let (c, l) = (&contiguous.slots[0], &channels_last.slots[0]);
        assert!(close(&l.exp_avg, &c.exp_avg) && close(&l.exp_avg_sq, &c.exp_avg_sq), "moments, element by element");
    }
}
