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

    /// Drops the gradients (PyTorch's zero_grad(set_to_none=True)).
    pub fn zero_grad(&mut self) {
        for s in &self.slots {
            crate::shim::reset_grad(&s.param);
        }
    }

    /// One update at learning rate `lr` with the gradients currently in the parameters. Tensors without a
    /// gradient are left alone, as PyTorch does.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let step = Tensor::from(self.step as f32);
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
            g.steps.push(step.to_device(s.param.device()));
        }
        tch::no_grad(|| {
            for (wd, g) in &groups {
                crate::shim::fused_adamw(g, lr, self.beta1, self.beta2, *wd, self.eps)
                    .unwrap_or_else(|e| panic!("fused AdamW: {e}"));
            }
        });
    }
}
