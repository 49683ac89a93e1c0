//! Ensemble weights chosen on validation: the members' validation predictions on a shared split, and the weights
//! on the simplex (non-negative, summing to 1) whose weighted mean logit has the best validation AUC or log-loss.
//! Equal weights are always among the candidates and are kept unless something does strictly better, so the
//! chosen weights are never worse than equal weights on validation.

use super::{read_model, EnsembleError};
use crate::metrics::auc;
use crate::probability::{log_loss_of_logits, sigmoid};

/// What the weights optimise on validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Validation AUC (higher is better): the ranking, what the challenge scores.
    Auc,
    /// Validation log-loss of sigmoid(weighted mean logit) (lower is better).
    LogLoss,
}

impl Objective {
    fn value(self, logits: &[f64], labels: &[u8]) -> f64 {
        match self {
            Objective::Auc => auc(logits, labels).expect("both classes were checked"),
            Objective::LogLoss => log_loss_of_logits(logits, labels),
        }
    }

    /// Whether `a` is strictly better than `b`.
    fn better(self, a: f64, b: f64) -> bool {
        match self {
            Objective::Auc => a > b,
            Objective::LogLoss => a < b,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Objective::Auc => "AUC",
            Objective::LogLoss => "log-loss",
        }
    }
}

/// A member this far below the best member's validation AUC is reported as weak: a weak member drags an
/// equal-weight ensemble down. 0.01 is well above the noise of AUC on a validation set of thousands of objects
/// (its standard error is a few 1e-3) and below the gaps seen between good and poor recipes (0.03 and more).
pub const WEAK_MEMBER_AUC_GAP: f64 = 0.01;

/// The weights chosen, with what they and equal weights score on validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenWeights {
    pub objective: Objective,
    /// One per member, summing to 1.
    pub weights: Vec<f64>,
    /// The objective with these weights and with equal weights.
    pub value: f64,
    pub equal_value: f64,
    /// Each member's validation AUC and log-loss alone.
    pub member_auc: Vec<f64>,
    pub member_log_loss: Vec<f64>,
    /// The validation objects.
    pub n: usize,
}

impl ChosenWeights {
    /// The members whose validation AUC is more than [`WEAK_MEMBER_AUC_GAP`] below the best member's.
    pub fn weak_members(&self) -> Vec<usize> {
        let best = self.member_auc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (0..self.member_auc.len()).filter(|&m| best - self.member_auc[m] > WEAK_MEMBER_AUC_GAP).collect()
    }
}

/// The points of the simplex in `members` dimensions with coordinates in steps of 1/`steps`.
fn grid(members: usize, steps: usize) -> Vec<Vec<f64>> {
    fn fill(left: usize, slots: usize, prefix: &mut Vec<usize>, steps: usize, out: &mut Vec<Vec<f64>>) {
        if slots == 1 {
            prefix.push(left);
            out.push(prefix.iter().map(|&k| k as f64 / steps as f64).collect());
            prefix.pop();
            return;
        }
        for k in 0..=left {
            prefix.push(k);
            fill(left - k, slots - 1, prefix, steps, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    fill(steps, members, &mut Vec::new(), steps, &mut out);
    out
}

/// The number of grid points of [`grid`]: C(steps + members - 1, members - 1).
fn grid_size(members: usize, steps: usize) -> f64 {
    (1..members).map(|k| (steps + k) as f64 / k as f64).product()
}

/// The most grid points tried for AUC; each costs one AUC (a sort of the validation set).
const MAX_GRID: f64 = 2000.0;

/// The Euclidean projection of `v` onto the simplex (Duchi et al. 2008).
fn project(v: &[f64]) -> Vec<f64> {
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut sum, mut theta) = (0.0, 0.0);
    for (k, &x) in u.iter().enumerate() {
        sum += x;
        let t = (sum - 1.0) / (k + 1) as f64;
        if x - t > 0.0 {
            theta = t;
        }
    }
    v.iter().map(|&x| (x - theta).max(0.0)).collect()
}

/// Refuses members whose validation files hold different objects (they were split differently).
fn check_shared_split(validation: &[String], models: &[super::Model]) -> Result<(), EnsembleError> {
    let first = &models[0];
    for (spec, m) in validation.iter().zip(models).skip(1) {
        let differ: Vec<String> = first
            .logits
            .keys()
            .filter(|id| !m.logits.contains_key(*id))
            .chain(m.logits.keys().filter(|id| !first.logits.contains_key(*id)))
            .cloned()
            .collect();
        if !differ.is_empty() {
            return Err(EnsembleError::NotSharedSplit {
                spec: spec.clone(),
                first: validation[0].clone(),
                ids: differ,
            });
        }
    }
    Ok(())
}

/// Chooses ensemble weights on the members' validation predictions (`validation`: one file or shard pattern per
/// member, with labels, on the same validation objects). AUC: the best point of a grid on the simplex (steps of
/// 1/20, coarser for many members) and equal weights. Log-loss: projected gradient descent from equal weights,
/// a step taken only when it lowers the loss.
pub fn choose_weights(validation: &[String], objective: Objective) -> Result<ChosenWeights, EnsembleError> {
    let models = validation.iter().map(|v| read_model(v)).collect::<Result<Vec<_>, _>>()?;
    check_shared_split(validation, &models)?;
    let first = &models[0];
    let truth = super::join_truth(validation, &models)?;
    let ids: Vec<&String> = first.logits.keys().collect();
    let labels: Vec<u8> = ids
        .iter()
        .map(|id| {
            truth
                .get(*id)
                .map(|t| t.0)
                .ok_or_else(|| EnsembleError::Unlabelled { spec: validation[0].clone(), id: id.to_string() })
        })
        .collect::<Result<_, _>>()?;
    let pos = labels.iter().filter(|&&l| l == 1).count();
    if pos == 0 || pos == labels.len() {
        return Err(EnsembleError::OneClass);
    }
    let z: Vec<Vec<f64>> = models.iter().map(|m| ids.iter().map(|id| m.logits[*id]).collect()).collect();
    let mix =
        |w: &[f64]| -> Vec<f64> { (0..ids.len()).map(|k| w.iter().zip(&z).map(|(w, z)| w * z[k]).sum()).collect() };
    let members = models.len();
    let equal = vec![1.0 / members as f64; members];
    let equal_value = objective.value(&mix(&equal), &labels);
    let (mut best, mut best_value) = (equal.clone(), equal_value);
    match objective {
        Objective::Auc => {
            let mut steps = 20;
            while steps > 1 && grid_size(members, steps) > MAX_GRID {
                steps -= 1;
            }
            for w in grid(members, steps) {
                let v = objective.value(&mix(&w), &labels);
                if objective.better(v, best_value) {
                    (best, best_value) = (w, v);
                }
            }
        }
        Objective::LogLoss => {
            let mut lr = 1.0;
            for _ in 0..500 {
                let s = mix(&best);
                let grad: Vec<f64> = z
                    .iter()
                    .map(|zm| {
                        let g: f64 = (0..s.len()).map(|k| (sigmoid(s[k]) - f64::from(labels[k])) * zm[k]).sum();
                        g / s.len() as f64
                    })
                    .collect();
                let mut moved = false;
                while lr > 1e-8 {
                    let w = project(&best.iter().zip(&grad).map(|(w, g)| w - lr * g).collect::<Vec<_>>());
                    let v = objective.value(&mix(&w), &labels);
                    if objective.better(v, best_value) {
                        (best, best_value, moved) = (w, v, true);
                        lr *= 2.0;
                        break;
                    }
                    lr /= 2.0;
                }
                if !moved || best_value.is_nan() {
                    break;
                }
            }
        }
    }
    let member_auc = z.iter().map(|zm| auc(zm, &labels).expect("both classes were checked")).collect();
    let member_log_loss = z.iter().map(|zm| log_loss_of_logits(zm, &labels)).collect();
    Ok(ChosenWeights {
        objective,
        weights: best,
        value: best_value,
        equal_value,
        member_auc,
        member_log_loss,
        n: ids.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lensfind_core::rng::Rng;

    #[test]
    fn grid_and_projection() {
        let g = grid(3, 2);
        assert_eq!(g.len() as f64, grid_size(3, 2));
        assert_eq!(g.len(), 6);
        assert!(g.iter().all(|w| (w.iter().sum::<f64>() - 1.0).abs() < 1e-12));
        assert_eq!(project(&[0.5, 0.5]), [0.5, 0.5]);
        assert_eq!(project(&[2.0, 0.0]), [1.0, 0.0]);
        let p = project(&[0.7, 0.6, -1.0]);
        assert!((p[0] - 0.55).abs() < 1e-12 && (p[1] - 0.45).abs() < 1e-12 && p[2] == 0.0, "{p:?}");
    }

    /// Validation files of a good member, a poor one (mostly noise) and an over-confident good one.
    fn members(dir: &std::path::Path, seed: u64) -> Vec<String> {
        let mut rng = Rng::new(seed, 11);
        let mut texts = vec![String::from("id,label,source,logit\n"); 3];
        for k in 0..600 {
            let label = u8::from(k % 3 == 0);
            let signal = if label == 1 { 1.5 } else { -1.5 };
            let good = signal + rng.normal();
            let poor = 0.2 * signal + 2.0 * rng.normal();
            let confident = 6.0 * (signal + rng.normal());
            for (text, logit) in texts.iter_mut().zip([good, poor, confident]) {
                text.push_str(&format!("o{k:04},{label},1,{logit}\n"));
            }
        }
        texts
            .iter()
            .enumerate()
            .map(|(m, text)| {
                let p = dir.join(format!("m{m}.csv"));
                std::fs::write(&p, text).unwrap();
                p.display().to_string()
            })
            .collect()
    }

    #[test]
    fn weights_on_validation_never_do_worse_than_equal_weights() {
        let t = tempfile::tempdir().unwrap();
        for seed in 0..4 {
            let files = members(t.path(), seed);
            for objective in [Objective::Auc, Objective::LogLoss] {
                for set in [&files[..2], &files[..], &files[1..]] {
                    let c = choose_weights(set, objective).unwrap();
                    assert!(!objective.better(c.equal_value, c.value), "{objective:?} {c:?}");
                    assert!((c.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9 && c.weights.iter().all(|&w| w >= 0.0));
                    // The value is that of the weights reported, recomputed through the ensemble.
                    let preds = crate::ensemble::ensemble(set, Some(&c.weights), false).unwrap();
                    let logits: Vec<f64> = preds.iter().map(|p| p.logit).collect();
                    let labels: Vec<u8> = preds.iter().map(|p| p.label.unwrap()).collect();
                    assert!((objective.value(&logits, &labels) - c.value).abs() < 1e-9);
                }
            }
            // The poor member is named weak and given less weight than the good one by AUC.
            let c = choose_weights(&files[..2], Objective::Auc).unwrap();
            assert_eq!(c.weak_members(), [1]);
            assert!(c.weights[0] > c.weights[1] && c.value > c.equal_value, "{c:?}");
        }
    }

    #[test]
    fn members_must_share_the_validation_split() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.csv");
        let b = t.path().join("b.csv");
        std::fs::write(&a, "id,label,source,logit\nx,1,1,1\ny,0,1,0\n").unwrap();
        std::fs::write(&b, "id,label,source,logit\nx,1,1,1\nz,0,1,0\n").unwrap();
        let specs = [a.display().to_string(), b.display().to_string()];
        let err = choose_weights(&specs, Objective::Auc).unwrap_err().to_string();
        assert!(
            err.contains("do not hold the same validation objects") && err.contains("the same split seed"),
            "{err}"
        );
        std::fs::write(&b, "id,logit\nx,1\ny,0\n").unwrap();
        let err = choose_weights(&specs[1..], Objective::Auc).unwrap_err().to_string();
        assert!(err.contains("needs the label of every validation object"), "{err}");
    }
}
