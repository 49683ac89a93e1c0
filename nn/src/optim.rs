//! AdamW whose state we own (tch cannot save an optimizer's moments, and an exact resume needs them).
//!
//! The update is torch.optim.AdamW's single-tensor path, op for op, so that one step matches PyTorch to float
//! rounding: decoupled weight decay `p *= 1 - lr*wd`, `m.lerp_(g, 1-b1)`, `v = b2 v + (1-b2) g^2`, then
//! `p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.

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
    /// Steps taken (the `t` of the bias corrections).
    pub step: i64,
}

impl AdamW {
    /// `params`: (name, tensor, weight decay) for every tensor to optimise.
    pub fn new(params: Vec<(String, Tensor, f64)>, beta1: f64, beta2: f64, eps: f64) -> AdamW {
        let slots = params
            .into_iter()
            .map(|(name, param, weight_decay)| {
                let exp_avg = param.zeros_like().detach();
                let exp_avg_sq = param.zeros_like().detach();
                Slot { name, param, exp_avg, exp_avg_sq, weight_decay }
            })
            .collect();
        AdamW { slots, beta1, beta2, eps, step: 0 }
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One update at learning rate `lr` with the gradients currently in the parameters. Tensors without a
    /// gradient are left alone, as PyTorch does.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = lr / bias1;
        tch::no_grad(|| {
            for s in &mut self.slots {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                let mut p = s.param.shallow_clone();
                if s.weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * s.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&grad, 1.0 - self.beta1);
                let _ = s.exp_avg_sq.g_mul_scalar_(self.beta2).addcmul_(&grad, &grad.g_mul_scalar(1.0 - self.beta2));
                let denom = (s.exp_avg_sq.sqrt() / bias2_sqrt).g_add_scalar(self.eps);
                let _ = p.addcdiv_(&(&s.exp_avg * (-step_size)), &denom);
            }
        });
    }
}
