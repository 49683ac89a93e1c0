//! Inference: a trained run loaded from its directory, and the logits of pack rows under test-time views. Training's
//! validation (the identity view alone) and lens-infer share this path, so both see the same numbers.

use anyhow::Result;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind};

use crate::batch::{Batcher, Planned};
use crate::device::{in_precision, to_model_input, ExecSettings};
use crate::models::layers::{to_channels_last, vars_to_channels_last};
use crate::models::Model;
use crate::run_dir::{RunDir, TrainConfig};
use crate::shim::inference_mode;
use crate::tta::View;

/// A trained run, loaded for inference.
pub struct Predictor {
    pub config: TrainConfig,
    pub model: Model,
    _vs: VarStore,
}

impl Predictor {
    /// Loads RUN/config.json and RUN/model.safetensors onto `device`.
    pub fn load(run: &RunDir, device: Device, channels_last: bool) -> Result<Predictor> {
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
    pub fn predict_views(
        &self,
        batcher: &Batcher,
        rows: &[usize],
        views: &[View],
        exec: ExecSettings,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f64>>> {
        predict_views(&self.model, batcher, rows, views, exec, on_batch)
    }
}

/// Logits of `model` per view ([rows][views]) for pack rows, in batches (gathered ahead of the model), in
/// inference mode; `on_batch` hears how many rows each batch scored.
pub fn predict_views(
    model: &Model,
    batcher: &Batcher,
    rows: &[usize],
    views: &[View],
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
pub fn predict(model: &Model, batcher: &Batcher, rows: &[usize], exec: ExecSettings) -> Result<Vec<f64>> {
    let logits = predict_views(model, batcher, rows, &[View::IDENTITY], exec, &mut |_| {})?;
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
