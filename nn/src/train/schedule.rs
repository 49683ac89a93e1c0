//! The learning rate at each step: optional linear warm-up, then cosine annealing to 0 over the remaining steps,
//! stepped per batch (the reference's CosineAnnealingLR with T_max = all steps).

pub(crate) fn lr_at(step: usize, total: usize, base: f64, warmup: usize) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let t = (step - warmup).min(span) as f64 / span as f64;
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(lr_at(0, 100, 1.0, 0), 1.0);
        assert!((lr_at(50, 100, 1.0, 0) - 0.5).abs() < 1e-12);
        assert!(lr_at(100, 100, 1.0, 0) < 1e-12);
        assert!((lr_at(4, 100, 1.0, 10) - 0.5).abs() < 1e-12);
        assert_eq!(lr_at(10, 100, 1.0, 10), 1.0);
    }
}
