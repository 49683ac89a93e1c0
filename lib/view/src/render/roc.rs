//! The ROC curve as a PNG, with a log false-positive-rate axis (where lens finding lives), and beside it the
//! reliability diagram of the probabilities: lens-eval --plot.

use std::path::Path;

use plotters::prelude::*;

use super::{draw_error, font, Canvas, RenderError};
use lensfind_eval::calibration::{reliability, Bin};
use lensfind_eval::metrics::{roc, split_by_source, Evaluation};

/// One ROC curve to draw.
struct Curve {
    name: String,
    auc: Option<f64>,
    /// (FPR, TPR) points.
    points: Vec<(f64, f64)>,
}

/// Draws into `path` (PNG) the ROC curves of all objects and of each source (`scores`, `labels` and `sources` of
/// the same objects that `eval` evaluated), labelled with their AUCs, down to the smallest false-positive rate the
/// data can show; and on the right the reliability diagram of `probabilities` (the same objects' predicted
/// probabilities).
pub fn roc_plot(
    path: &Path,
    scores: &[f64],
    labels: &[u8],
    sources: &[Option<u8>],
    eval: &Evaluation,
    probabilities: &[f64],
) -> Result<(), RenderError> {
    let (curves, min_fpr) = roc_curves(scores, labels, sources, eval);
    font::register("the ROC plot")?;
    let mut canvas = Canvas::new(2 * PANEL_WIDTH, 650, [255; 3]);
    draw(&mut canvas, &curves, min_fpr, &reliability(probabilities, labels))?;
    Ok(canvas.write_png(path)?)
}

/// The width of each of the two panels.
const PANEL_WIDTH: usize = 900;

/// The curves of all objects and of each source, named as lens-eval names the groups, with the AUCs of `eval`
/// (the evaluation of the same objects); and the smallest FPR worth drawing: the smallest the data can show (one
/// false positive), and at least 1e-4, halved.
fn roc_curves(scores: &[f64], labels: &[u8], sources: &[Option<u8>], eval: &Evaluation) -> (Vec<Curve>, f64) {
    let negatives = labels.iter().filter(|&&l| l != 1).count().max(1);
    let min_fpr = (1.0 / negatives as f64).min(1e-4) / 2.0;
    let curve = |s: &[f64], l: &[u8]| roc(s, l).into_iter().map(|(f, t, _)| (f, t)).collect::<Vec<_>>();
    let mut curves = vec![Curve { name: "all".into(), auc: eval.all.auc, points: curve(scores, labels) }];
    for (src, (s, l)) in split_by_source(scores, labels, sources) {
        let auc = eval.by_source.get(&src).and_then(|r| r.auc);
        curves.push(Curve { name: format!("source {src}"), auc, points: curve(&s, &l) });
    }
    (curves, min_fpr)
}

/// Draws the curves (FPRs below `min_fpr`, including 0, at `min_fpr`) on the left and the reliability diagram of
/// `bins` on the right.
fn draw(canvas: &mut Canvas, curves: &[Curve], min_fpr: f64, bins: &[Bin]) -> Result<(), RenderError> {
    let size = (canvas.width as u32, canvas.height as u32);
    let root = BitMapBackend::with_buffer(&mut canvas.pixels, size).into_drawing_area();
    let draw = draw_error("the plot");
    root.fill(&WHITE).map_err(draw)?;
    let (left, right) = root.split_horizontally(PANEL_WIDTH as u32);
    draw_reliability(&right, bins)?;
    let mut chart = ChartBuilder::on(&left)
        .caption("ROC curve", ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((min_fpr..1.0f64).log_scale(), 0.0..1.0f64)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("false-positive rate")
        .y_desc("true-positive rate")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(draw)?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN];
    for (k, c) in curves.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let label = match c.auc {
            Some(a) => format!("{} (AUC {a:.4})", c.name),
            None => c.name.clone(),
        };
        chart
            .draw_series(LineSeries::new(c.points.iter().map(|&(f, t)| (f.max(min_fpr), t)), colour.stroke_width(2)))
            .map_err(draw)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)
}

/// The reliability diagram: the fraction of lenses against the mean predicted probability of each non-empty bin
/// (red points and line), the diagonal of perfect calibration (grey), and the share of objects in each bin (blue
/// bars, on the same 0..1 axis).
fn draw_reliability<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    bins: &[Bin],
) -> Result<(), RenderError> {
    let draw = draw_error("the reliability diagram");
    let mut chart = ChartBuilder::on(area)
        .caption("Reliability", ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("predicted probability")
        .y_desc("fraction of lenses")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(draw)?;
    let total: usize = bins.iter().map(|b| b.count).sum::<usize>().max(1);
    let blue = BLUE.mix(0.35);
    chart
        .draw_series(
            bins.iter().map(|b| {
                Rectangle::new([(b.lo + 0.01, 0.0), (b.hi - 0.01, b.count as f64 / total as f64)], blue.filled())
            }),
        )
        .map_err(draw)?
        .label("share of objects")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], blue.filled()));
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(150, 150, 150).stroke_width(1)))
        .map_err(draw)?
        .label("perfectly calibrated")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150).stroke_width(1)));
    let points: Vec<(f64, f64)> = bins.iter().filter_map(|b| Some((b.mean_pred?, b.lens_fraction?))).collect();
    chart
        .draw_series(LineSeries::new(points.iter().copied(), RED.stroke_width(2)))
        .map_err(draw)?
        .label("lens fraction per bin")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, RED.filled()))).map_err(draw)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)
}
