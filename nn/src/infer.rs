//! Inference: a trained run loaded from its directory, and the logits of pack rows under test-time views. Training's
//! validation (the identity view alone) and lens-infer share this path, so both see the same numbers.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use lensfind_data::pack::Pack;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind};

use crate::autotune::{Cache, Request, Workload};
use crate::device::{Choice, MemoryFormat, Precision};

use crate::batch::{Batcher, Planned};
use crate::config::TrainConfig;
use crate::d4::D4;
use crate::device::{in_precision, to_model_input, ExecSettings};
use crate::models::layers::{to_channels_last, vars_to_channels_last};
use crate::models::Model;
use crate::run_dir::RunDir;
use crate::shim::inference_mode;

/// A trained run, loaded for inference.
pub(crate) struct Predictor {
    pub config: TrainConfig,
    pub model: Model,
    _vs: VarStore,
}

impl Predictor {
    /// Loads RUN/config.json and RUN/model.safetensors onto `device`.
    pub(crate) fn load(run: &RunDir, device: Device, channels_last: bool) -> Result<Predictor> {
        let config = run.read_config()?;
        let mut vs = VarStore::new(device);
        let model = config.model_config.build(&vs.root());
        run.load_weights(&mut vs, &config.model)?;
        if channels_last {
            vars_to_channels_last(&vs);
        }
        Ok(Predictor { config, model, _vs: vs })
    }

    /// Logits per view ([rows][views]) for pack rows; `on_batch` hears how many rows each batch scored.
    pub(crate) fn predict_views(
        &self,
        batcher: &Batcher,
        rows: &[usize],
        views: &[D4],
        exec: ExecSettings,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f64>>> {
        predict_views(&self.model, batcher, rows, views, exec, on_batch)
    }
}

/// What lens-infer asks for: a run's model on a pack's rows, under test-time views.
#[derive(Debug, Clone)]
pub struct Scoring<'a> {
    pub run: &'a RunDir,
    pub pack: &'a Path,
    pub views: &'a [D4],
    /// Objects per model call.
    pub batch: usize,
    /// Score only the rows with row % N == K: (K, N).
    pub shard: Option<(usize, usize)>,
    pub device: Device,
    pub precision: Choice<Precision>,
    pub memory_format: Choice<MemoryFormat>,
    pub cache: &'a Cache,
}

/// The logits of the rows scored, with what produced them.
pub struct Scored {
    pub pack: Arc<Pack>,
    /// The pack rows scored, in pack order, and their logits per view.
    pub rows: Vec<usize>,
    pub logits: Vec<Vec<f64>>,
    /// The model's name (config.json's).
    pub model: String,
    /// How auto settled precision and memory format (None when both were given), and its notes (a cache that
    /// could not be read or written).
    pub autotune: Option<crate::autotune::Autotune>,
    pub notes: Vec<String>,
}

/// What scoring tells its caller as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many rows are about to be scored.
    Rows(usize),
    /// A batch of this many rows is scored.
    Scored(usize),
}

/// Scores the rows of a pack with a trained run: the precision and memory format settled (given, cached or
/// measured), the model loaded, the pack checked (its standardisation against the one the run trained on;
/// the rows about to be read against their block checksums, so that a damaged images.npy is an error
/// naming the rows, never a wrong score), then the logits.
pub fn score(req: &Scoring, on_progress: &mut dyn FnMut(Progress)) -> Result<Scored> {
    let config = req.run.read_config()?;
    let auto = Request {
        workload: Workload::Infer,
        model_name: &config.model,
        model: &config.model_config,
        batch: req.batch,
        device: req.device,
        precision: req.precision,
        memory_format: req.memory_format,
    };
    let (setting, autotune, notes) = crate::autotune::resolve(&auto, req.cache)?;
    let channels_last = setting.memory_format.is_channels_last();
    let predictor = Predictor::load(req.run, req.device, channels_last)?;
    let pack = Arc::new(Pack::open(req.pack).with_context(|| format!("opening {}", req.pack.display()))?);
    // What the model learnt from: config.json's record, or for an older run the training pack's manifest when the
    // pack is still there.
    let trained = predictor
        .config
        .standardize
        .or_else(|| lensfind_data::pack::read_manifest(&predictor.config.pack).ok().map(|m| m.standardization.mode));
    let scaled = pack.manifest.standardization.mode;
    if let Some(trained) = trained.filter(|&t| t != scaled) {
        let problem = format!(
            "{} is standardised {scaled} but the run trained on {trained} images: the model would see other numbers \
             than it learnt",
            req.pack.display()
        );
        return Err(crate::setting::ScalingMismatch { problem, to: Some(trained) }.into());
    }
    let rows: Vec<usize> = match req.shard {
        Some((k, n)) => (0..pack.len()).filter(|r| r % n == k).collect(),
        None => (0..pack.len()).collect(),
    };
    pack.check_rows(rows.iter().copied()).with_context(|| format!("checking {}", req.pack.display()))?;
    on_progress(Progress::Rows(rows.len()));
    let exec = ExecSettings {
        size: predictor.config.model_config.input_size(),
        precision: setting.precision,
        channels_last,
        device: req.device,
        batch: req.batch,
    };
    let batcher = Batcher::new(Arc::clone(&pack), req.device, Some(false))?;
    let logits =
        predictor.predict_views(&batcher, &rows, req.views, exec, &mut |n| on_progress(Progress::Scored(n)))?;
    Ok(Scored { pack, rows, logits, model: predictor.config.model.clone(), autotune, notes })
}

/// Logits of `model` per view ([rows][views]) for pack rows, in batches (gathered ahead of the model), in
/// inference mode; `on_batch` hears how many rows each batch scored.
pub(crate) fn predict_views(
    model: &Model,
    batcher: &Batcher,
    rows: &[usize],
    views: &[D4],
    exec: ExecSettings,
    on_batch: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f64>>> {
    // The logits stay on the device until the end ([n, views] a batch, float32 as the model gives them): reading
    // each batch back would make the host wait for the device at every batch.
    let mut scored: Vec<tch::Tensor> = Vec::new();
    let mut batches = batcher.batches(rows.chunks(exec.batch.max(1)).map(Planned::plain).collect())?;
    while let Some((x, _)) = batches.next() {
        let n = x.size()[0] as usize;
        let per_view = inference_mode(|| {
            let x = to_model_input(x, exec.size, false);
            let logits: Vec<tch::Tensor> = views
                .iter()
                .map(|v| {
                    let xv = v.apply(&x);
                    let xv = if exec.channels_last { to_channels_last(&xv) } else { xv };
                    in_precision(exec.precision, exec.device, || model.forward_t(&xv, false)).view([-1])
                })
                .collect();
            tch::Tensor::stack(&logits, 1).to_kind(Kind::Float)
        });
        scored.push(per_view);
        on_batch(n);
    }
    if scored.is_empty() {
        return Ok(Vec::new());
    }
    let all = tch::Tensor::cat(&scored, 0).to_kind(Kind::Double).to_device(Device::Cpu).contiguous();
    let flat = Vec::<f64>::try_from(all.view([-1]))?;
    Ok(flat.chunks(views.len()).map(<[f64]>::to_vec).collect())
}

/// Logits of the model on pack rows (the identity view alone), in batches, in inference mode.
pub(crate) fn predict(model: &Model, batcher: &Batcher, rows: &[usize], exec: ExecSettings) -> Result<Vec<f64>> {
    let logits = predict_views(model, batcher, rows, &[D4::IDENTITY], exec, &mut |_| {})?;
    Ok(logits.into_iter().map(|v| v[0]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tta::Tta;
    use tch::Tensor;

    #[test]
    fn flips_of_a_symmetric_image_give_equal_logits() {
        let cfg = crate::ModelConfig::from_name("convnext_atto", None).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let model = cfg.build(&vs.root());
        let a = Tensor::randn([2, 5, 41, 41], (Kind::Float, Device::Cpu));
        let sym = &a + a.flip([3]);
        let sym = &sym + sym.flip([2]);
        let logits: Vec<Tensor> =
            Tta::Flips.views().iter().map(|v| tch::no_grad(|| model.forward_t(&v.apply(&sym), false))).collect();
        assert!(logits[0].equal(&logits[1]) && logits[0].equal(&logits[2]));
    }
}
