//! lens-train's engine: the reference recipe (BCE-with-logits, AdamW, cosine per batch, flips and rot90, early
//! stopping on validation AUC) on a memory-mapped pack, with exact resume.

pub mod checkpoint;
pub mod data;
pub mod ddp;
pub mod scaler;
pub mod schedule;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lensfind::metrics::{auc, tpr_at_fpr, Confusion};
use lensfind::output::write_output;
use lensfind::pack::Pack;
use lensfind::progress::Progress;
use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use crate::dist::ProcessGroup;
use crate::layers::{to_channels_last, vars_to_channels_last};
use crate::optim::AdamW;
use crate::registry::{Model, ModelConfig};
use crate::shim::{autocast, AutocastDtype};
use checkpoint::TrainState;
use data::{augment, check_classes, draw_augmentations, epoch_order, stratified_split, streams, Batcher};
use ddp::{shard, strided, unshard, GradSync};

/// Arithmetic precision of training and validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    /// bfloat16 autocast: the fastest on CPUs with AVX-512 BF16 and on recent GPUs, and as stable as fp32 here.
    Bf16,
    /// float16 autocast with dynamic loss scaling.
    Fp16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Ok(Precision::Fp16),
            _ => Err(format!("{s:?}: expected fp32, bf16 or fp16")),
        }
    }
}

/// Every setting of a run; written to RUN/config.json at the start and read back by --resume and lens-infer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub pack: PathBuf,
    pub val_pack: Option<PathBuf>,
    pub model: String,
    pub model_config: ModelConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub grad_clip: Option<f64>,
    /// No weight decay on 1-D tensors (norms, biases, layer scales) and on position embeddings / class token.
    pub no_decay_norm_bias: bool,
    pub pos_weight: Option<f64>,
    pub precision: Precision,
    pub channels_last: bool,
    pub seed: u64,
    pub val_split: f64,
    pub patience: usize,
    pub pretrained: Option<PathBuf>,
    pub checkpoint_every: Option<usize>,
    pub data_on_device: bool,
    pub device: String,
    /// The tool and version that made the run.
    pub tool: String,
}

/// One line of metrics.csv: the epoch's training loss and validation metrics. Timings live in timing.csv, so
/// that two runs with the same seed give the same metrics.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: f64,
    pub val_accuracy: f64,
    pub val_precision: f64,
    pub val_recall: f64,
    pub val_tpr_at_fpr_1e2: f64,
    pub val_tpr_at_fpr_1e3: f64,
    pub val_auc_source1: f64,
    pub val_auc_source2: f64,
    pub skipped_steps: usize,
}

/// The device named by `--device` (`auto`: the first GPU if there is one).
pub fn parse_device(name: &str) -> Result<Device> {
    rank_device(name, 0)
}

/// The device of the process with local rank `local_rank`: `auto` and `cuda` mean GPU `local_rank` of the node
/// (torchrun's and Slurm's convention: one process per GPU).
pub fn rank_device(name: &str, local_rank: usize) -> Result<Device> {
    Ok(match name {
        "auto" if tch::Cuda::is_available() => Device::Cuda(local_rank),
        "auto" | "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(local_rank),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!("--device {other:?}: expected auto, cpu, cuda or cuda:N"),
        },
    })
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    StoppedEarly,
    /// A signal asked us to stop; the checkpoint is saved.
    Interrupted,
}

fn bce_mean(logits: &[f64], labels: &[u8], pos_weight: f64) -> f64 {
    let sum: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let log1p_exp_neg_abs = (-x.abs()).exp().ln_1p();
            // -[w y log s(x) + (1-y) log(1-s(x))], written without overflow.
            let log_sig = -(log1p_exp_neg_abs + (-x).max(0.0));
            let log_one_minus = -(log1p_exp_neg_abs + x.max(0.0));
            -(pos_weight * f64::from(y) * log_sig + (1.0 - f64::from(y)) * log_one_minus)
        })
        .sum();
    sum / logits.len().max(1) as f64
}

/// Runs `f` in the run's precision.
pub fn in_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::Fp32 => f(),
        Precision::Bf16 => autocast(device, AutocastDtype::BFloat16, f),
        Precision::Fp16 => autocast(device, AutocastDtype::Float16, f),
    }
}

/// Prepares a batch for the model: memory format and input size.
pub fn to_model_input(x: Tensor, size: i64, channels_last: bool) -> Tensor {
    let x = if x.size()[2] != size || x.size()[3] != size {
        x.upsample_bilinear2d([size, size], false, None, None)
    } else {
        x
    };
    if channels_last {
        to_channels_last(&x)
    } else {
        x
    }
}

/// How a model is run: input side, precision, memory format, device, batch size.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    pub size: i64,
    pub precision: Precision,
    pub channels_last: bool,
    pub device: Device,
    pub batch: usize,
}

/// Logits of the model on pack rows (no test-time views), in batches, in inference mode.
pub fn predict(model: &Model, batcher: &mut Batcher, rows: &[usize], run: RunSettings) -> Vec<f64> {
    crate::infer::predict_views(model, batcher, rows, &[crate::infer::View::IDENTITY], run)
        .into_iter()
        .map(|v| v[0])
        .collect()
}

/// Global gradient norm clipping; returns the norm before clipping (inf/NaN when a gradient is not finite). One
/// host synchronisation for all tensors: per-tensor norms are stacked and reduced on the device.
fn grad_norm_and_clip(opt: &AdamW, max_norm: Option<f64>, unscale: f64) -> f64 {
    tch::no_grad(|| {
        let mut grads: Vec<Tensor> = opt.slots.iter().map(|s| s.param.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        if unscale != 1.0 {
            for g in &mut grads {
                let _ = g.g_mul_scalar_(1.0 / unscale);
            }
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let norm = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if let Some(max) = max_norm {
            if norm.is_finite() && norm > max {
                let factor = max / (norm + 1e-6);
                for g in &mut grads {
                    let _ = g.g_mul_scalar_(factor);
                }
            }
        }
        norm
    })
}

/// Unscales (fp16), checks, clips and applies the gradients in the parameters. With a loss scaler, a non-finite
/// gradient skips the step and lowers the scale, as GradScaler does. Returns whether the step was taken.
pub fn optimizer_step(opt: &mut AdamW, scaler: Option<&mut scaler::GradScaler>, clip: Option<f64>, lr: f64) -> bool {
    let scale = scaler.as_ref().map_or(1.0, |s| s.scale);
    let norm = grad_norm_and_clip(opt, clip, scale);
    let take = match scaler {
        Some(s) => s.update(norm.is_finite()),
        None => norm.is_finite(),
    };
    if take {
        opt.step(lr);
    }
    take
}

/// The parameters to optimise with their weight decay.
fn param_groups(vs: &VarStore, cfg: &TrainConfig) -> Vec<(String, Tensor, f64)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(name, t)| {
            let no_decay = cfg.no_decay_norm_bias && (t.dim() <= 1 || name == "pos_embed" || name == "cls_token");
            let wd = if no_decay { 0.0 } else { cfg.weight_decay };
            (name, t, wd)
        })
        .collect()
}

/// Saves the weights as safetensors, sorted by name, whole or not at all.
pub fn save_weights(vs: &VarStore, path: &Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (k, v.detach().to_device(Device::Cpu).contiguous())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}.safetensors",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    Tensor::write_safetensors(&vars, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn write_metrics(run: &Path, history: &[MetricsRow]) -> Result<()> {
    write_output(Some(&run.join("metrics.csv")), |w| {
        let mut csv = csv::Writer::from_writer(w);
        for row in history {
            csv.serialize(row)?;
        }
        csv.flush()?;
        Ok(())
    })
}

/// Trains (or resumes) the run in `run_dir`. `stop` is polled after every step (set it from SIGTERM/SIGINT).
///
/// With a process group, this process is one rank of a data-parallel run: `cfg.batch_size` is per rank, each rank
/// trains on its shard of every epoch, gradients are averaged, validation is split and gathered, and rank 0 alone
/// writes files and reports. Every rank returns the same outcome.
pub fn train(
    cfg: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    quiet: bool,
    stop: &AtomicBool,
    pg: Option<&ProcessGroup>,
) -> Result<Outcome> {
    let (rank, world) = pg.map_or((0, 1), |p| (p.rank, p.world));
    let main = rank == 0;
    let quiet = quiet || !main;
    let device = rank_device(&cfg.device, pg.map_or(0, |p| p.local_rank))?;
    let pack = Pack::open(&cfg.pack).with_context(|| format!("opening the training pack {}", cfg.pack.display()))?;
    let val_pack = match &cfg.val_pack {
        Some(p) => Some(Pack::open(p).with_context(|| format!("opening the validation pack {}", p.display()))?),
        None => None,
    };
    let (train_rows, val_rows) = match &val_pack {
        Some(v) => {
            if let Some(m) = pack.meta.iter().find(|m| m.label.is_none()) {
                bail!("object {} of {} has no label; training needs labels", m.id, cfg.pack.display());
            }
            ((0..pack.len()).collect::<Vec<_>>(), (0..v.len()).collect::<Vec<_>>())
        }
        None => stratified_split(&pack.meta, cfg.val_split, cfg.seed)?,
    };
    let val_source = val_pack.as_ref().unwrap_or(&pack);
    check_classes(&pack.meta, &train_rows, "training")?;
    check_classes(&val_source.meta, &val_rows, "validation")?;
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        bail!("--batch-size and --epochs must be at least 1");
    }

    let vs = VarStore::new(device);
    // The initial weights follow the seed.
    tch::manual_seed((cfg.seed ^ streams::TORCH) as i64);
    let model = cfg.model_config.build(&vs.root());
    if let Some(ckpt) = &cfg.pretrained {
        if !resume && main {
            let report = crate::import::import_timm(&vs, &cfg.model_config, ckpt)?;
            if !quiet {
                eprintln!(
                    "lens-train: pretrained {}: {} loaded, {} adapted ({}), {} fresh ({}), {} unused",
                    ckpt.display(),
                    report.loaded.len(),
                    report.adapted.len(),
                    report.adapted.iter().map(|(k, w)| format!("{k}: {w}")).collect::<Vec<_>>().join("; "),
                    report.missing.len(),
                    report.missing.join(", "),
                    report.unexpected.len()
                );
            }
        }
    }
    if cfg.channels_last {
        vars_to_channels_last(&vs);
    }
    let mut opt = AdamW::new(param_groups(&vs, cfg), 0.9, 0.999, 1e-8);
    let ckpt_dir = run_dir.join("checkpoint");
    let mut state = if resume { checkpoint::load(&ckpt_dir, &mut opt)? } else { TrainState::new() };
    let mut grad_sync = None;
    if let Some(pg) = pg {
        // Rank 0's weights (fresh, pretrained or resumed) and moments everywhere.
        ddp::check_same_layout(pg, &opt)?;
        ddp::broadcast_state(pg, &opt)?;
        grad_sync = Some(GradSync::new(&opt, ddp::BUCKET_BYTES));
    }
    // Batches of B per rank: one step of `world` ranks consumes B x world objects.
    let steps_per_epoch = train_rows.len().div_ceil(world).div_ceil(cfg.batch_size);
    if state.world_size != world {
        // Resuming at another world size: continue from the same position in the epoch's order.
        let done = state.batch_in_epoch * cfg.batch_size * state.world_size;
        let per_step = cfg.batch_size * world;
        state.batch_in_epoch = done / per_step;
        state.global_step = state.epoch * steps_per_epoch + state.batch_in_epoch;
        if main && done % per_step != 0 {
            eprintln!(
                "lens-train: resuming with {world} processes a checkpoint of {}: the last {} objects before it are \
                 trained on again",
                state.world_size,
                done % per_step
            );
        }
        state.world_size = world;
    }
    if resume && !quiet {
        eprintln!(
            "lens-train: resuming {} at epoch {}, batch {} (step {})",
            run_dir.display(),
            state.epoch + 1,
            state.batch_in_epoch,
            state.global_step
        );
    }
    if state.stopped_early || state.epoch >= cfg.epochs {
        if main {
            eprintln!("lens-train: {} is already complete", run_dir.display());
        }
        return Ok(Outcome::Finished);
    }

    let size = cfg.model_config.input_size();
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut batcher = Batcher::new(&pack, device, cfg.data_on_device)?;
    let mut val_batcher = match &val_pack {
        Some(v) => Some(Batcher::new(v, device, cfg.data_on_device)?),
        None => None,
    };
    let pos_weight = cfg.pos_weight.map(|w| Tensor::from_slice(&[w as f32]).to_device(device));
    let mut skipped = 0usize;

    // Training loss of this rank since the ranks last added theirs into `state`.
    let (mut pending_sum, mut pending_count) = (0.0f64, 0usize);
    while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        let order = epoch_order(&train_rows, cfg.seed, epoch);
        let mine = shard(&order, rank, world);
        let progress = Progress::new("lens-train", "images", (mine.len() * world) as u64, quiet);
        progress.inc((state.batch_in_epoch * cfg.batch_size * world).min(mine.len() * world) as u64);
        let started = Instant::now();
        let mut images = 0usize;
        let square = pack.manifest.height == pack.manifest.width;
        for (b, rows) in mine.chunks(cfg.batch_size).enumerate().skip(state.batch_in_epoch) {
            let step = state.global_step;
            let lr = schedule::lr_at(step, total_steps, cfg.lr, cfg.warmup_steps);
            // Every random number of this step comes from (seed, step, rank) or (seed, epoch, row): a resumed run
            // draws the same ones.
            tch::manual_seed((cfg.seed ^ streams::TORCH ^ step as u64 ^ ((rank as u64) << 40)) as i64);
            let (x, y) = batcher.batch(rows);
            let augs = draw_augmentations(rows, cfg.seed, epoch, square);
            let x = to_model_input(augment(&x, &augs), size, cfg.channels_last);
            opt.zero_grad();
            let logits =
                in_precision(cfg.precision, device, || model.forward_t(&x, true)).squeeze_dim(1).to_kind(Kind::Float);
            let loss = logits.binary_cross_entropy_with_logits(
                &y,
                None::<Tensor>,
                pos_weight.as_ref().map(Tensor::shallow_clone),
                Reduction::Mean,
            );
            let loss_value = loss.double_value(&[]);
            let scale = if cfg.precision == Precision::Fp16 { state.scaler.scale } else { 1.0 };
            (&loss * scale).backward();
            // Averaged gradients, and whether any rank was asked to stop: every rank stops after the same step.
            let stop_now = match (&mut grad_sync, pg) {
                (Some(sync), Some(pg)) => {
                    sync.all_reduce(pg, &opt, f32::from(u8::from(stop.load(Ordering::Relaxed))))? > 0.0
                }
                _ => stop.load(Ordering::Relaxed),
            };
            let scaler = (cfg.precision == Precision::Fp16).then_some(&mut state.scaler);
            if !optimizer_step(&mut opt, scaler, cfg.grad_clip, lr) {
                skipped += 1;
                if cfg.precision != Precision::Fp16 {
                    bail!("non-finite gradient at step {step} (loss {loss_value}); try a lower --lr or --grad-clip");
                }
            }
            pending_sum += loss_value * rows.len() as f64;
            pending_count += rows.len();
            state.global_step += 1;
            state.batch_in_epoch = b + 1;
            state.optimizer_steps = opt.step;
            images += rows.len() * world;
            progress.inc((rows.len() * world) as u64);
            progress.set_message(format!(
                "loss {:.4}",
                (state.loss_sum + pending_sum) / (state.loss_count + pending_count).max(1) as f64
            ));
            let periodic = cfg.checkpoint_every.is_some_and(|n| n > 0 && state.global_step % n == 0);
            if stop_now || periodic {
                add_loss(pg, device, &mut state, &mut pending_sum, &mut pending_count)?;
                if main {
                    checkpoint::save(&ckpt_dir, &state, &opt)?;
                }
                if stop_now {
                    progress.finish();
                    if main {
                        eprintln!(
                            "lens-train: stopped by a signal at epoch {}, step {}; checkpoint saved, resume with --resume",
                            epoch + 1,
                            step + 1
                        );
                    }
                    return Ok(Outcome::Interrupted);
                }
            }
        }
        add_loss(pg, device, &mut state, &mut pending_sum, &mut pending_count)?;
        progress.finish();
        let seconds = started.elapsed().as_secs_f64();

        // Validation.
        let vb = val_batcher.as_mut().unwrap_or(&mut batcher);
        let settings = RunSettings {
            size,
            precision: cfg.precision,
            channels_last: cfg.channels_last,
            device,
            batch: cfg.batch_size * 2,
        };
        let logits = match pg {
            Some(pg) => {
                let part = predict(&model, vb, &strided(&val_rows, rank, world), settings);
                unshard(&pg.gather_f64(&part, device)?, val_rows.len())
            }
            None => predict(&model, vb, &val_rows, settings),
        };
        let labels: Vec<u8> = val_rows.iter().map(|&r| val_source.meta[r].label.unwrap_or(0)).collect();
        let sources: Vec<Option<u8>> = val_rows.iter().map(|&r| val_source.meta[r].source).collect();
        let auc_of = |src: u8| {
            let (s, l): (Vec<f64>, Vec<u8>) = logits
                .iter()
                .zip(&labels)
                .zip(&sources)
                .filter(|(_, s)| **s == Some(src))
                .map(|((x, y), _)| (*x, *y))
                .unzip();
            auc(&s, &l).unwrap_or(f64::NAN)
        };
        let confusion = Confusion::at(&logits, &labels, 0.0);
        let val_auc = auc(&logits, &labels).unwrap_or(f64::NAN);
        let row = MetricsRow {
            epoch: epoch + 1,
            step: state.global_step,
            lr: schedule::lr_at(state.global_step.saturating_sub(1), total_steps, cfg.lr, cfg.warmup_steps),
            train_loss: state.loss_sum / state.loss_count.max(1) as f64,
            val_loss: bce_mean(&logits, &labels, cfg.pos_weight.unwrap_or(1.0)),
            val_auc,
            val_accuracy: confusion.accuracy(),
            val_precision: confusion.precision(),
            val_recall: confusion.recall(),
            val_tpr_at_fpr_1e2: tpr_at_fpr(&logits, &labels, 1e-2).unwrap_or(f64::NAN),
            val_tpr_at_fpr_1e3: tpr_at_fpr(&logits, &labels, 1e-3).unwrap_or(f64::NAN),
            val_auc_source1: auc_of(1),
            val_auc_source2: auc_of(2),
            skipped_steps: skipped,
        };
        if main {
            eprintln!(
            "lens-train: epoch {}/{}: train loss {:.4}, val loss {:.4}, val AUC {:.4}, acc {:.4}, TPR@FPR1e-2 {:.3}; {:.0} images/s",
            epoch + 1,
            cfg.epochs,
            row.train_loss,
            row.val_loss,
            row.val_auc,
            row.val_accuracy,
            row.val_tpr_at_fpr_1e2,
            images as f64 / seconds.max(1e-9)
        );
        }
        let improved = state.best_auc.is_none_or(|best| val_auc > best);
        if improved {
            state.best_auc = Some(val_auc);
            state.best_epoch = Some(epoch + 1);
            state.epochs_without_improvement = 0;
        }
        if improved && main {
            save_weights(&vs, &run_dir.join("model.safetensors"))?;
            write_output(Some(&run_dir.join("val_predictions.csv")), |w| {
                let mut csv = csv::Writer::from_writer(w);
                csv.write_record(["id", "label", "source", "logit"])?;
                for (k, &r) in val_rows.iter().enumerate() {
                    let m = &val_source.meta[r];
                    let opt_str = |v: Option<u8>| v.map_or_else(String::new, |v| v.to_string());
                    csv.write_record([
                        m.id.as_str(),
                        &opt_str(m.label),
                        &opt_str(m.source),
                        &format!("{:.6}", logits[k]),
                    ])?;
                }
                csv.flush()?;
                Ok(())
            })?;
        }
        if !improved {
            state.epochs_without_improvement += 1;
        }
        state.history.push(row);
        if main {
            write_metrics(run_dir, &state.history)?;
            append_timing(run_dir, epoch + 1, seconds, images)?;
        }
        state.epoch += 1;
        state.batch_in_epoch = 0;
        state.loss_sum = 0.0;
        state.loss_count = 0;
        if state.epochs_without_improvement >= cfg.patience {
            state.stopped_early = true;
        }
        if main {
            checkpoint::save(&ckpt_dir, &state, &opt)?;
        }
        if state.stopped_early && main {
            eprintln!(
                "lens-train: no AUC improvement for {} epochs; stopping early (best epoch {})",
                cfg.patience,
                state.best_epoch.unwrap_or(0)
            );
        }
        if state.stopped_early {
            return Ok(Outcome::StoppedEarly);
        }
        if any_rank(pg, device, stop.load(Ordering::Relaxed))? {
            return Ok(Outcome::Interrupted);
        }
    }
    Ok(Outcome::Finished)
}

/// Adds the training loss of every rank since the last call into `state` (the same sum on every rank).
fn add_loss(
    pg: Option<&ProcessGroup>,
    device: Device,
    state: &mut TrainState,
    sum: &mut f64,
    count: &mut usize,
) -> Result<()> {
    let (s, c) = match pg {
        Some(pg) => {
            let v = pg.sum_f64(&[*sum, *count as f64], device)?;
            (v[0], v[1] as usize)
        }
        None => (*sum, *count),
    };
    state.loss_sum += s;
    state.loss_count += c;
    (*sum, *count) = (0.0, 0);
    Ok(())
}

/// Whether `flag` is set on any rank (on this one, without a group).
fn any_rank(pg: Option<&ProcessGroup>, device: Device, flag: bool) -> Result<bool> {
    match pg {
        Some(pg) => Ok(pg.sum_f64(&[f64::from(u8::from(flag))], device)?[0] > 0.0),
        None => Ok(flag),
    }
}

fn append_timing(run: &Path, epoch: usize, seconds: f64, images: usize) -> Result<()> {
    use std::io::Write;
    let path = run.join("timing.csv");
    let new = !path.exists();
    let mut f = fs::OpenOptions::new().create(true).append(true).open(&path)?;
    // One write per append: writeln! on a File issues a write per formatted piece, and a SIGKILL between them
    // left half a row that the resumed run then continued.
    let mut text = if new { String::from("epoch,seconds,images_per_s\n") } else { String::new() };
    text.push_str(&format!("{epoch},{seconds:.3},{:.1}\n", images as f64 / seconds.max(1e-9)));
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_loss_scaling_skips_a_step_with_an_inf_gradient() {
        let w = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 0.0)], 0.9, 0.999, 1e-8);
        let mut scaler = scaler::GradScaler::default();
        // A scaled loss whose gradient overflows: d/dw (w * inf).sum() = inf.
        (&w * f64::INFINITY).sum(Kind::Float).backward();
        assert!(!optimizer_step(&mut opt, Some(&mut scaler), None, 0.1), "step skipped");
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [1.0, 2.0], "weights untouched");
        assert_eq!(scaler.scale, 32768.0, "scale halved");
        assert_eq!(opt.step, 0);
        // A finite, scaled gradient is unscaled before the update: the step equals the unscaled one.
        opt.zero_grad();
        (&w * scaler.scale).sum(Kind::Float).backward();
        assert!(optimizer_step(&mut opt, Some(&mut scaler), None, 0.1));
        let got = Vec::<f32>::try_from(&w).unwrap();
        // First AdamW step moves each weight by lr * sign(grad) (m/sqrt(v) = 1 after bias correction).
        assert!((got[0] - 0.9).abs() < 1e-5 && (got[1] - 1.9).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn validation_loss_matches_torch() {
        let logits = [2.0, -1.0, 0.5, -30.0, 40.0];
        let labels = [1u8, 0, 0, 1, 0];
        let t = Tensor::from_slice(&logits).binary_cross_entropy_with_logits::<Tensor>(
            &Tensor::from_slice(&labels.map(f64::from)),
            None,
            None,
            Reduction::Mean,
        );
        assert!((bce_mean(&logits, &labels, 1.0) - t.double_value(&[])).abs() < 1e-12);
    }
}
