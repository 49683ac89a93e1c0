//! Calibrated probabilities: a temperature (and optionally a bias, Platt scaling) fitted on validation logits by
//! maximum likelihood, written as JSON for lens-ensemble to apply; and the measures of calibration lens-eval
//! reports (log-loss, Brier score, expected calibration error, the reliability table).
//!
//! The calibrated logit is `logit / temperature + bias` with a positive temperature: a strictly increasing map, so
//! the ranking of the objects, and with it AUC and every rate at a threshold, is unchanged.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::probability::{log_loss_of_logits, sigmoid};

/// The `format` of a calibration file, and the version this reader knows.
pub(crate) const FORMAT: &str = "lensfind-calibration";
pub(crate) const VERSION: u32 = 1;

/// Why a calibration could not be fitted, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("fitting a calibration needs lenses and non-lenses; the scores have {lenses} lenses among {n} objects")]
    OneClass { n: usize, lenses: usize },
    #[error(
        "the fitted temperature is not positive ({scale:.3e} as 1/T): these logits rank non-lenses above lenses, \
         and a calibration that keeps the ranking cannot fix that"
    )]
    Reversed { scale: f64 },
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a calibration file (lens-eval writes one where it fits a calibration)", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{}: format {format:?} version {version}; this lensfind reads {FORMAT:?} version {VERSION}", path.display())]
    Version { path: PathBuf, format: String, version: u32 },
    #[error("{}: the temperature must be a positive number and the bias finite", path.display())]
    Values { path: PathBuf },
}

/// Temperature only, or temperature and bias (Platt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Temperature,
    Platt,
}

/// A fitted calibration, as its JSON file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub format: String,
    pub version: u32,
    pub method: Method,
    /// Divides the logit; > 0. Above 1 softens an over-confident model.
    pub temperature: f64,
    /// Added after dividing; 0 for `temperature`.
    pub bias: f64,
    /// What it was fitted on: objects, lenses, and the mean log-loss before and after.
    pub n: usize,
    pub lenses: usize,
    pub log_loss_before: f64,
    pub log_loss_after: f64,
}

impl Calibration {
    /// The calibrated logit.
    pub(crate) fn apply(&self, logit: f64) -> f64 {
        logit / self.temperature + self.bias
    }

    /// Reads and checks a calibration file.
    pub fn read(path: &Path) -> Result<Calibration, CalibrationError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CalibrationError::Read { path: path.into(), source })?;
        let c: Calibration =
            serde_json::from_str(&text).map_err(|source| CalibrationError::Parse { path: path.into(), source })?;
        if c.format != FORMAT || c.version != VERSION {
            return Err(CalibrationError::Version { path: path.into(), format: c.format, version: c.version });
        }
        if !(c.temperature.is_finite() && c.temperature > 0.0 && c.bias.is_finite()) {
            return Err(CalibrationError::Values { path: path.into() });
        }
        Ok(c)
    }
}

/// Mean squared difference between probability and label.
pub(crate) fn brier(probs: &[f64], labels: &[u8]) -> f64 {
    let sum: f64 = probs.iter().zip(labels).map(|(&p, &y)| (p - f64::from(y)).powi(2)).sum();
    sum / probs.len().max(1) as f64
}

/// The number of equal-width probability bins of the reliability table and of ECE.
pub(crate) const BINS: usize = 10;

/// One bin of the reliability table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// Mean predicted probability and fraction of lenses in the bin; None when it is empty.
    pub mean_pred: Option<f64>,
    pub lens_fraction: Option<f64>,
}

/// The reliability table: [`BINS`] equal-width bins of predicted probability, [lo, hi) (the last one includes 1).
pub fn reliability(probs: &[f64], labels: &[u8]) -> Vec<Bin> {
    let mut sums = vec![(0usize, 0.0f64, 0u64); BINS];
    for (&p, &y) in probs.iter().zip(labels) {
        let b = ((p * BINS as f64) as usize).min(BINS - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += u64::from(y);
    }
    sums.into_iter()
        .enumerate()
        .map(|(b, (count, p, pos))| Bin {
            lo: b as f64 / BINS as f64,
            hi: (b + 1) as f64 / BINS as f64,
            count,
            mean_pred: (count > 0).then(|| p / count as f64),
            lens_fraction: (count > 0).then(|| pos as f64 / count as f64),
        })
        .collect()
}

/// Expected calibration error over the bins of [`reliability`]: the mean over objects of |mean probability -
/// fraction of lenses| of their bin.
pub(crate) fn ece(probs: &[f64], labels: &[u8]) -> f64 {
    let n = probs.len().max(1) as f64;
    reliability(probs, labels)
        .iter()
        .filter_map(|b| Some(b.count as f64 / n * (b.mean_pred? - b.lens_fraction?).abs()))
        .sum()
}

/// Fits `method` on `logits` and `labels` (1 = lens) by maximum likelihood: Newton's method on the mean
/// log-loss of sigmoid(a * logit + b) (a = 1/T; b = 0 for `Temperature`), which is convex, from a = 1, b = 0,
/// with step halving so that every step lowers the loss. So the result is never worse on these logits than no
/// calibration at all.
pub fn fit(logits: &[f64], labels: &[u8], method: Method) -> Result<Calibration, CalibrationError> {
    let lenses = labels.iter().filter(|&&l| l == 1).count();
    if lenses == 0 || lenses == labels.len() {
        return Err(CalibrationError::OneClass { n: labels.len(), lenses });
    }
    let loss = |a: f64, b: f64| -> f64 {
        let z: Vec<f64> = logits.iter().map(|&x| a * x + b).collect();
        log_loss_of_logits(&z, labels)
    };
    let platt = method == Method::Platt;
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    let before = current;
    for _ in 0..100 {
        // Gradient and Hessian of the mean loss in (a, b).
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in logits.iter().zip(labels) {
            let p = sigmoid(a * x + b);
            let (r, w) = (p - f64::from(y), p * (1.0 - p));
            ga += r * x;
            gb += r;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let n = logits.len() as f64;
        let (ga, gb, haa, hab, hbb) = (ga / n, gb / n, haa / n, hab / n, hbb / n);
        // The Newton step, with a small ridge so that a (nearly) separable set still gives a finite step.
        let ridge = 1e-12;
        let (da, db) = if platt {
            let det = (haa + ridge) * (hbb + ridge) - hab * hab;
            ((-(hbb + ridge) * ga + hab * gb) / det, (hab * ga - (haa + ridge) * gb) / det)
        } else {
            (-ga / (haa + ridge), 0.0)
        };
        if !(da.is_finite() && db.is_finite()) {
            break;
        }
        let mut step = 1.0;
        let mut moved = false;
        while step > 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let l = loss(na, nb);
            if l < current {
                (a, b, current, moved) = (na, nb, l, true);
                break;
            }
            step /= 2.0;
        }
        if !moved || (step * da).abs() < 1e-12 * a.abs().max(1.0) && (step * db).abs() < 1e-12 {
            break;
        }
    }
    if a <= 0.0 {
        return Err(CalibrationError::Reversed { scale: a });
    }
    Ok(Calibration {
        format: FORMAT.into(),
        version: VERSION,
        method,
        temperature: 1.0 / a,
        bias: b,
        n: logits.len(),
        lenses,
        log_loss_before: before,
        log_loss_after: current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auc;
    use lensfind_core::rng::Rng;

    /// Logits of a well-calibrated model (labels drawn with probability sigmoid(z)), then multiplied by `scale`.
    fn model(n: usize, scale: f64, seed: u64) -> (Vec<f64>, Vec<u8>) {
        let mut rng = Rng::new(seed, 7);
        let (mut z, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let true_logit = (rng.uniform() - 0.5) * 8.0;
            y.push(u8::from(rng.uniform() < sigmoid(true_logit)));
            z.push(true_logit * scale);
        }
        (z, y)
    }

    #[test]
    fn temperature_undoes_over_confidence_and_keeps_the_ranking() {
        let (z, y) = model(4000, 4.0, 1);
        let c = fit(&z, &y, Method::Temperature).unwrap();
        // The logits were multiplied by 4: the fitted temperature is near 4 (4000 draws: within 15%).
        assert!((c.temperature - 4.0).abs() < 0.6, "{c:?}");
        assert!(c.log_loss_after < c.log_loss_before - 0.1, "{c:?}");
        assert_eq!(c.log_loss_after, log_loss_of_logits(&z.iter().map(|&v| c.apply(v)).collect::<Vec<_>>(), &y));
        let calibrated: Vec<f64> = z.iter().map(|&v| c.apply(v)).collect();
        assert_eq!(auc(&calibrated, &y), auc(&z, &y), "a positive temperature keeps the ranking exactly");
        let (p0, p1): (Vec<f64>, Vec<f64>) = z.iter().map(|&v| (sigmoid(v), sigmoid(c.apply(v)))).unzip();
        assert!(ece(&p1, &y) < ece(&p0, &y) && brier(&p1, &y) < brier(&p0, &y));

        let platt = fit(&z, &y, Method::Platt).unwrap();
        assert!(platt.log_loss_after <= c.log_loss_after, "Platt has the temperature's freedom and more");
        let calibrated: Vec<f64> = z.iter().map(|&v| platt.apply(v)).collect();
        assert_eq!(auc(&calibrated, &y), auc(&z, &y));
    }

    #[test]
    fn a_calibrated_model_is_left_nearly_alone_and_bad_input_is_refused() {
        let (z, y) = model(4000, 1.0, 2);
        let c = fit(&z, &y, Method::Platt).unwrap();
        // Already calibrated: T within 10% of 1 and a small bias (4000 draws).
        assert!((c.temperature - 1.0).abs() < 0.1 && c.bias.abs() < 0.1, "{c:?}");
        assert!(c.log_loss_after <= c.log_loss_before);
        assert!(matches!(fit(&[1.0, 2.0], &[1, 1], Method::Temperature), Err(CalibrationError::OneClass { .. })));
        let reversed: Vec<f64> = z.iter().map(|v| -v).collect();
        assert!(matches!(fit(&reversed, &y, Method::Temperature), Err(CalibrationError::Reversed { .. })));
    }

    #[test]
    fn measures_by_hand() {
        let (p, y) = ([0.05, 0.15, 0.95, 0.85], [0u8, 1, 1, 1]);
        assert!((brier(&p, &y) - (0.0025 + 0.7225 + 0.0025 + 0.0225) / 4.0).abs() < 1e-15);
        // Bins: [0, 0.1) holds 0.05 (no lens), [0.1, 0.2) 0.15 (a lens), [0.8, 0.9) 0.85 and [0.9, 1] 0.95.
        let bins = reliability(&p, &y);
        assert_eq!(bins.iter().map(|b| b.count).collect::<Vec<_>>(), [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert!((ece(&p, &y) - (0.05 + 0.85 + 0.15 + 0.05) / 4.0).abs() < 1e-15);
        assert_eq!(reliability(&[1.0], &[1])[BINS - 1].count, 1, "1 falls in the last bin");
    }

    #[test]
    fn file_round_trip_and_checks() {
        let t = tempfile::tempdir().unwrap();
        let (z, y) = model(500, 3.0, 3);
        let c = fit(&z, &y, Method::Platt).unwrap();
        let path = t.path().join("c.json");
        std::fs::write(&path, serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(Calibration::read(&path).unwrap(), c);
        let bad = Calibration { temperature: -1.0, ..c.clone() };
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(matches!(Calibration::read(&path), Err(CalibrationError::Values { .. })));
        let other = Calibration { version: 2, ..c };
        std::fs::write(&path, serde_json::to_string(&other).unwrap()).unwrap();
        assert!(matches!(Calibration::read(&path), Err(CalibrationError::Version { .. })));
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(Calibration::read(&path), Err(CalibrationError::Parse { .. })));
    }
}
