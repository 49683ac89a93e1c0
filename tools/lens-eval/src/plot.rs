//! The ROC curve as a PNG, with a log false-positive-rate axis (where lens finding lives), drawn with plotters
//! into a buffer and encoded with png.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

fn register_font() -> Result<()> {
    let (path, bytes) = lensfind::font::truetype_font("--plot")?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable TrueType font", path.display()))
}

/// One ROC curve to draw.
pub struct Curve {
    pub name: String,
    pub auc: Option<f64>,
    /// (FPR, TPR) points.
    pub points: Vec<(f64, f64)>,
}

/// Draws the curves into `path` (PNG). FPRs below `min_fpr` (including 0) are drawn at `min_fpr`.
pub fn roc_png(path: &Path, curves: &[Curve], min_fpr: f64) -> Result<()> {
    register_font()?;
    let (w, h) = (900u32, 650u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing the plot: {e:?}");
        root.fill(&WHITE).map_err(draw)?;
        let mut chart = ChartBuilder::on(&root)
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
                .draw_series(LineSeries::new(
                    c.points.iter().map(|&(f, t)| (f.max(min_fpr), t)),
                    colour.stroke_width(2),
                ))
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
        root.present().map_err(draw)?;
    }
    lensfind::output::write_output(Some(path), |out| {
        let mut enc = png::Encoder::new(out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&buf)?;
        Ok(())
    })
}
