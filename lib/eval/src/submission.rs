//! What lens-ensemble writes: scores (`id,pred`, the reference's format; validation predictions keep
//! `label,source` and add the `logit`), or the challenge's own 41-column submission, with binary decisions at a
//! threshold and probabilities optionally calibrated.

use std::io::Write;
use std::path::Path;

use crate::calibration::Calibration;
use crate::ensemble::Prediction;
use crate::operating::{OperatingError, OperatingPoint};
use crate::probability::sigmoid;
use crate::scores::ScoreColumn;
use lensfind_core::text::opt_u8;

/// The challenge submission's header, byte for byte as the challenge gives it (`vel disp` with a space, and both
/// `ra`/`RA`, `dec`/`Dec`, `vel disp`/`vel_disp`).
pub(crate) const CHALLENGE_HEADER: &str =
    "id,preds,ra,dec,zlens,mag_lens_g,mag_lens_r,mag_lens_i,mag_lens_z,mag_lens_y,\
ell_l,ell_l_PA,Rein,vel disp,sh,sh_PA,srcx,srcy,mag_src_g,mag_src_r,mag_src_i,mag_src_z,mag_src_y,zsrc,ell_s,\
ell_s_PA,Reff_s,n_s_sers,ell_m,ell_m_PA,Reff_l,n_l_sers,vel_disp,RA,Dec,mag_object_g,mag_object_r,mag_object_i,\
mag_object_z,mag_object_y,z_central";

/// The value of every column of the challenge file that we do not estimate.
pub(crate) const NOT_ESTIMATED: &str = "-999";

/// Why a submission could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error("the challenge format needs a threshold: its preds column is a 1/0 decision")]
    NoThreshold,
    #[error(transparent)]
    Operating(#[from] OperatingError),
    #[error("writing the submission")]
    Write(#[from] std::io::Error),
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// id,pred (with validation predictions: id,label,source,logit,pred).
    Scores,
    /// The challenge's 41 columns: id, preds (1/0 at the threshold), -999 in the others.
    Challenge,
}

/// Where objects are called lenses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// pred (after calibration) >= this probability: a number given on the command line, or a threshold file
    /// chosen on a `pred` column.
    Probability(f64),
    /// The ensemble's mean logit (before calibration) >= this: a threshold file chosen on a `logit` column. Taken
    /// before calibration so that a calibration never changes which objects are called lenses.
    MeanLogit(f64),
}

impl Threshold {
    /// `text` is a number (a probability) or the path of a threshold file (lens-eval --pick-threshold).
    pub fn parse(text: &str) -> Result<Threshold, OperatingError> {
        if let Ok(p) = text.trim().parse::<f64>() {
            return Ok(Threshold::Probability(p));
        }
        let point = OperatingPoint::read(Path::new(text))?;
        Ok(match (point.score_column, point.logit, point.probability) {
            (ScoreColumn::Logit, Some(l), _) => Threshold::MeanLogit(l),
            (_, _, Some(p)) => Threshold::Probability(p),
            _ => unreachable!("OperatingPoint::read checks the threshold"),
        })
    }

    /// Whether `p` is called a lens.
    pub(crate) fn calls(self, p: &Scored) -> bool {
        match self {
            Threshold::Probability(t) => p.pred >= t,
            Threshold::MeanLogit(t) => p.mean_logit >= t,
        }
    }
}

/// One object's output scores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scored {
    /// The ensemble's mean logit, before calibration.
    pub mean_logit: f64,
    /// The calibrated logit (the mean logit without a calibration) and its sigmoid.
    pub logit: f64,
    pub pred: f64,
}

impl Scored {
    pub(crate) fn of(p: &Prediction, calibration: Option<&Calibration>) -> Scored {
        let logit = calibration.map_or(p.logit, |c| c.apply(p.logit));
        Scored { mean_logit: p.logit, logit, pred: sigmoid(logit) }
    }
}

/// Writes `predictions` as `format` to `w`, decisions at `threshold`, probabilities through `calibration`.
/// Scores: `id,pred` and with a threshold `label` (1/0); when the predictions carry labels (validation
/// predictions), `id,label,source,logit,pred` and with a threshold `called`. Challenge: its header, then one row
/// per object: id, preds (1/0), and -999 in the 39 other columns; it needs a threshold.
pub fn write_submission<W: Write>(
    w: W,
    predictions: &[Prediction],
    format: Format,
    threshold: Option<Threshold>,
    calibration: Option<&Calibration>,
) -> Result<(), SubmissionError> {
    let mut w = std::io::BufWriter::new(w);
    match format {
        Format::Challenge => {
            let threshold = threshold.ok_or(SubmissionError::NoThreshold)?;
            let rest = [NOT_ESTIMATED; 39].join(",");
            writeln!(w, "{CHALLENGE_HEADER}")?;
            for p in predictions {
                let called = u8::from(threshold.calls(&Scored::of(p, calibration)));
                writeln!(w, "{},{called},{rest}", lensfind_core::text::csv_field(&p.id))?;
            }
        }
        Format::Scores => {
            let labelled = predictions.iter().any(|p| p.label.is_some());
            let mut csv = csv::Writer::from_writer(&mut w);
            let mut header = if labelled { vec!["id", "label", "source", "logit", "pred"] } else { vec!["id", "pred"] };
            if threshold.is_some() {
                header.push(if labelled { "called" } else { "label" });
            }
            csv.write_record(&header).map_err(lensfind_core::text::csv_io_error)?;
            for p in predictions {
                let s = Scored::of(p, calibration);
                let mut rec = vec![p.id.clone()];
                if labelled {
                    rec.extend([opt_u8(p.label), opt_u8(p.source), format!("{:.6}", s.logit)]);
                }
                rec.push(format!("{:.6}", s.pred));
                if let Some(t) = threshold {
                    rec.push(u8::from(t.calls(&s)).to_string());
                }
                csv.write_record(&rec).map_err(lensfind_core::text::csv_io_error)?;
            }
            csv.flush()?;
        }
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(id: &str, logit: f64, label: Option<u8>) -> Prediction {
        Prediction { id: id.into(), logit, pred: sigmoid(logit), label, source: label.map(|_| 1) }
    }

    fn written(preds: &[Prediction], format: Format, t: Option<Threshold>, c: Option<&Calibration>) -> String {
        let mut out = Vec::new();
        write_submission(&mut out, preds, format, t, c).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn challenge_rows_have_41_columns() {
        assert_eq!(CHALLENGE_HEADER.split(',').count(), 41);
        assert!(
            CHALLENGE_HEADER.contains(",Rein,vel disp,sh,") && CHALLENGE_HEADER.contains(",n_l_sers,vel_disp,RA,Dec,")
        );
        let preds = [prediction("object_1", 2.0, None), prediction("object_2", -1.0, None)];
        let text = written(&preds, Format::Challenge, Some(Threshold::MeanLogit(0.5)), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CHALLENGE_HEADER);
        assert!(lines[1].starts_with("object_1,1,-999,") && lines[2].starts_with("object_2,0,-999,"));
        assert!(lines[1..].iter().all(|l| l.split(',').count() == 41 && l.ends_with(",-999")));
        let mut out = Vec::new();
        let err = write_submission(&mut out, &preds, Format::Challenge, None, None).unwrap_err();
        assert!(matches!(err, SubmissionError::NoThreshold));
    }

    #[test]
    fn scores_and_thresholds_before_and_after_calibration() {
        let preds = [prediction("a", 2.0, None), prediction("b", 0.4, None)];
        assert_eq!(written(&preds, Format::Scores, None, None), "id,pred\na,0.880797\nb,0.598688\n");
        let soft = Calibration {
            format: crate::calibration::FORMAT.into(),
            version: 1,
            method: crate::calibration::Method::Temperature,
            temperature: 4.0,
            bias: 0.0,
            n: 0,
            lenses: 0,
            log_loss_before: 0.0,
            log_loss_after: 0.0,
        };
        // A probability threshold applies to the calibrated pred; a logit threshold file to the mean logit.
        let text = written(&preds, Format::Scores, Some(Threshold::Probability(0.55)), Some(&soft));
        assert_eq!(text, "id,pred,label\na,0.622459,1\nb,0.524979,0\n");
        let text = written(&preds, Format::Scores, Some(Threshold::MeanLogit(0.3)), Some(&soft));
        assert_eq!(text, "id,pred,label\na,0.622459,1\nb,0.524979,1\n");
        let val = [prediction("a", 2.0, Some(1)), prediction("b", 0.4, Some(0))];
        let text = written(&val, Format::Scores, Some(Threshold::MeanLogit(1.0)), Some(&soft));
        assert_eq!(text, "id,label,source,logit,pred,called\na,1,1,0.500000,0.622459,1\nb,0,1,0.100000,0.524979,0\n");
    }
}
