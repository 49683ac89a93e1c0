//! Probabilities and logits: the sigmoid that turns a logit into a probability, and the binary cross-entropy
//! (log-loss) of either against labels. Every other evaluation module takes them from here.

/// The probability of a logit, 1 / (1 + e^-x).
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// log(1 + e^x) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Mean binary cross-entropy of `logits` against `labels` (1 = lens), computed from the logits (no clipping).
pub(crate) fn log_loss_of_logits(logits: &[f64], labels: &[u8]) -> f64 {
    let sum: f64 = logits.iter().zip(labels).map(|(&z, &y)| softplus(z) - f64::from(y) * z).sum();
    sum / logits.len().max(1) as f64
}

/// The smallest probability [`log_loss_of_probabilities`] takes: half of 1e-6, the resolution of the six decimals
/// a submission's `pred` is written with (a lens written as 0.000000 costs ln(2e6), not infinity).
pub(crate) const PROBABILITY_FLOOR: f64 = 5e-7;

/// Mean binary cross-entropy of probabilities, each clipped to [PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR].
pub(crate) fn log_loss_of_probabilities(probs: &[f64], labels: &[u8]) -> f64 {
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
            if y == 1 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    sum / probs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_losses_by_hand() {
        let clipped = log_loss_of_probabilities(&[0.0], &[1]);
        assert!((clipped - (-PROBABILITY_FLOOR.ln())).abs() < 1e-12);
        assert!((log_loss_of_logits(&[0.0, 800.0], &[1, 1]) - std::f64::consts::LN_2 / 2.0).abs() < 1e-15);
        assert_eq!(sigmoid(0.0), 0.5);
    }
}
