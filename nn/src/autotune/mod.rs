//! Measured defaults: `--precision auto` and `--memory-format auto` time a few steps of each candidate setting on
//! the real model, batch and device, and choose the fastest. CPUs differ (on an AMD EPYC bf16 with channels-last
//! is fastest for convnext_tiny; on an Intel Xeon with AMX fp32 contiguous was twice as fast as that for
//! convnext_atto), so nothing measured on one machine is assumed on another.
//!
//! Candidates: on a CPU fp32 and bf16 autocast; on a GPU bf16 autocast (fp16 with loss scaling on GPUs without fast
//! bf16, before Ampere) and fp32; each contiguous and channels-last. A setting given explicitly narrows them; both
//! given, nothing is timed. The choice is kept in a cache (see [`cache`]) keyed by everything that decides it, so
//! repeated runs on one machine choose the same and pay the timing once.

mod cache;

use std::time::Instant;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::device::{in_precision, to_model_input, Choice, MemoryFormat, Precision};
use crate::models::layers::vars_to_channels_last;
use crate::models::{ModelConfig, NATIVE_SIZE};
use crate::optim::AdamW;
use crate::shim::inference_mode;
use crate::train::scaler::GradScaler;
use crate::train::step::{forward_backward, optimizer_step, StepSettings};
pub use cache::Cache;

/// What is timed: a training step (forward, backward, AdamW) or an inference forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Train,
    Infer,
}

/// A precision and memory format to run a model in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub precision: Precision,
    pub memory_format: MemoryFormat,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.precision, self.memory_format)
    }
}

/// The measured speed of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    #[serde(flatten)]
    pub setting: Setting,
    pub images_per_s: f64,
    /// Timing stopped after the second warm-up step, more than [`GIVE_UP`] times slower than the best so far: the
    /// figure is that step's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
}

/// A candidate that could not run, and why (the first line of its error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    #[serde(flatten)]
    pub setting: Setting,
    pub error: String,
}

impl Failed {
    /// One line for stderr.
    pub(crate) fn note(&self) -> String {
        format!("auto settings: {} dropped, it failed: {}", self.setting, self.error)
    }
}

/// What auto chose and why: recorded in a run's config.json and printed on stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autotune {
    pub workload: Workload,
    /// The cache key: hardware, libtorch, model, input size, batch, threads, device and candidates.
    pub key: String,
    pub chosen: Setting,
    /// Every candidate's speed, fastest first.
    pub timings: Vec<Timing>,
    /// The candidates that failed (dropped, never chosen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    /// Whether the choice came from the cache (the timings are then the cached ones).
    pub from_cache: bool,
}

impl Autotune {
    /// One line for stderr: `auto settings [KEY]: fp32 contiguous 395 img/s, ... -> fp32 contiguous`, and where
    /// the choice came from when it was the cache.
    pub fn summary(&self, cache: &Cache) -> String {
        let timings: Vec<String> = self
            .timings
            .iter()
            .map(|t| {
                format!(
                    "{} {:.0}{} img/s",
                    t.setting,
                    t.images_per_s,
                    if t.stopped_early { " (stopped early)" } else { "" }
                )
            })
            .collect();
        let source = match (self.from_cache, cache.path()) {
            (true, Some(p)) => format!(" (from the cache {}; without the cache, auto measures again)", p.display()),
            _ => String::new(),
        };
        format!("auto settings [{}]: {} -> {}{source}", self.key, timings.join(", "), self.chosen)
    }
}

/// What to tune: the model as it will run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub workload: Workload,
    pub model_name: &'a str,
    pub model: &'a ModelConfig,
    /// Images per step (per process).
    pub batch: usize,
    pub device: Device,
    pub precision: Choice<Precision>,
    pub memory_format: Choice<MemoryFormat>,
}

/// The settings auto chooses among for `device`, narrowed by what was given.
pub(crate) fn candidates(
    device: Device,
    precision: Choice<Precision>,
    memory_format: Choice<MemoryFormat>,
) -> Vec<Setting> {
    let precisions = match (precision, device) {
        (Choice::Is(p), _) => vec![p],
        // fp16 where a GPU has no fast bf16 (before Ampere, compute capability 8.0); where it has, fp16 only adds
        // loss scaling, which waits for the device every step to update the scale (on an H200 it never won:
        // BENCHMARKS.md, "On a GPU: NVIDIA H200"). On a CPU fp16 has no fast kernels.
        (Choice::Auto, Device::Cuda(i)) if crate::shim::cuda_capability(i).is_some_and(|(major, _)| major < 8) => {
            vec![Precision::Fp16, Precision::Fp32]
        }
        (Choice::Auto, Device::Cuda(_)) => vec![Precision::Bf16, Precision::Fp32],
        (Choice::Auto, _) => vec![Precision::Fp32, Precision::Bf16],
    };
    let formats = match memory_format {
        Choice::Is(m) => vec![m],
        Choice::Auto => vec![MemoryFormat::Contiguous, MemoryFormat::ChannelsLast],
    };
    precisions
        .iter()
        .flat_map(|&precision| formats.iter().map(move |&memory_format| Setting { precision, memory_format }))
        .collect()
}

/// The setting to run with: the given one when both are given (and no record), else the cached choice for this
/// request's key, else the fastest candidate measured now (stored in the cache). Returns notes for the user
/// (e.g. a corrupt cache that was ignored) beside the record.
pub(crate) fn resolve(req: &Request, cache: &Cache) -> Result<(Setting, Option<Autotune>, Vec<String>)> {
    let options = candidates(req.device, req.precision, req.memory_format);
    if let [only] = options.as_slice() {
        return Ok((*only, None, Vec::new()));
    }
    let key = key(req, &options);
    let (cached, mut notes) = cache.lookup(&key);
    if let Some(entry) = cached.filter(|e| options.contains(&e.chosen)) {
        let record = Autotune {
            workload: req.workload,
            key,
            chosen: entry.chosen,
            timings: entry.timings,
            failed: Vec::new(),
            from_cache: true,
        };
        return Ok((record.chosen, Some(record), notes));
    }
    let (timings, failed) = measure_all(&options, &mut |setting, best| measure(req, setting, best))?;
    notes.extend(failed.iter().map(Failed::note));
    let chosen = timings[0].setting;
    if let Err(e) = cache.store(&key, chosen, &timings) {
        notes.push(format!("could not write the autotune cache: {e:#}"));
    }
    Ok((chosen, Some(Autotune { workload: req.workload, key, chosen, timings, failed, from_cache: false }), notes))
}

/// Times every candidate with `measure` (given the best speed so far): the timings, fastest first, and the
/// candidates that failed, by an error or a panic (libtorch's errors reach Rust as panics in tch), which are
/// dropped. Fails when every candidate failed, naming each reason and what to pass instead.
fn measure_all(
    options: &[Setting],
    measure: &mut dyn FnMut(Setting, f64) -> Result<Timing>,
) -> Result<(Vec<Timing>, Vec<Failed>)> {
    let mut timings: Vec<Timing> = Vec::with_capacity(options.len());
    let mut failed = Vec::new();
    for &setting in options {
        let best = timings.iter().filter(|t| !t.stopped_early).map(|t| t.images_per_s).fold(0.0, f64::max);
        match crate::panics::catch(|| measure(setting, best)) {
            Ok(timing) => timings.push(timing),
            Err(e) => {
                let error = format!("{e:#}").lines().next().unwrap_or_default().to_string();
                failed.push(Failed { setting, error });
            }
        }
    }
    if timings.is_empty() {
        let reasons: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.setting, f.error)).collect();
        let problem = format!(
            "every candidate of the auto settings failed ({}); give the precision and the memory format explicitly \
             (fp32 and contiguous, for example), or use the CPU",
            reasons.join("; ")
        );
        return Err(crate::setting::SettingError::new(crate::setting::Setting::Precision, "auto", problem).into());
    }
    timings.sort_by(|a, b| b.images_per_s.total_cmp(&a.images_per_s));
    Ok((timings, failed))
}

/// Everything that decides the choice: the hardware (GPU model, or CPU model and its vector instructions), this
/// build of lensfind, libtorch, the model and its input size, the batch, the threads, the device and the candidates.
pub(crate) fn key(req: &Request, options: &[Setting]) -> String {
    let hardware = match req.device {
        Device::Cuda(i) => {
            format!("cuda:{i} {}", crate::shim::cuda_device_name(i).unwrap_or_else(|| "(unknown GPU)".into()))
        }
        _ => format!("cpu {} [{}]", cpu_model(), cpu_vector_features().join(" ")),
    };
    let size = req.model.input_size();
    let names: Vec<String> = options.iter().map(Setting::to_string).collect();
    format!(
        "{:?} | {hardware} | {} | libtorch {} | {} {size}x{size} | batch {} | {} threads | {}",
        req.workload,
        build_identity(),
        crate::version::loaded_libtorch_version(),
        req.model_name,
        req.batch,
        tch::get_num_threads(),
        names.join(", ")
    )
    .to_lowercase()
}

/// The value of the first /proc/cpuinfo line that starts with `field` (None where there is no such file or line).
fn cpuinfo_field(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    Some(line.split(':').nth(1)?.trim().to_string())
}

/// The CPU's model name as /proc/cpuinfo gives it.
pub(crate) fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| "unknown".into())
}

/// The vector instructions among the CPU's flags that decide which kernels oneDNN and MKL run. A model name does not
/// tell them apart: "AMD EPYC" has named CPUs with and without bf16 instructions (bf16 ran 3x faster than fp32 on one of
/// this project's machines and 6x slower on another).
pub(crate) fn cpu_vector_features() -> Vec<&'static str> {
    const FEATURES: [&str; 8] =
        ["avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16"];
    let flags = cpuinfo_field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    FEATURES.into_iter().filter(|f| flags.contains(f)).collect()
}

/// This build of lensfind (the running executable's modification time): a rebuilt or upgraded lensfind may compute
/// the model differently (which kernels run on which maps), so it measures again rather than trust a choice timed
/// with other code.
fn build_identity() -> String {
    let built = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match built {
        Some(t) => format!("build {}", t.as_secs()),
        None => "build unknown".into(),
    }
}

/// Steps run before timing (kernel selection, oneDNN's JIT, allocator warm-up) and steps timed.
const WARMUP: usize = 2;
const TIMED: usize = 3;
/// A candidate whose warm-up step is this many times slower than the best candidate so far cannot win: its timing
/// stops there. (Seen on an AMD EPYC without AVX-512: bf16 ran 6-10x slower than fp32, and timing it fully took
/// most of the start-up.)
pub(crate) const GIVE_UP: f64 = 4.0;
/// The same for the first warm-up step, which also pays one-off costs (oneDNN builds its kernels on first use), when
/// it took at least [`GIVE_UP_FIRST_AFTER`] seconds. Measured on an AMD EPYC (AVX2, 2 threads; timm's convnext_atto
/// and convnext_tiny at 41x41 on the same libtorch, inference at batch 256 and training at 128, every precision and
/// layout), the first step took at most 1.1 times a later one, while bf16 ran 6 to 13 times slower than fp32: a
/// first step 8 times slower than the best is a slow candidate, not one-off costs, and stopping there saves a step of
/// up to half a minute per candidate (convnext_tiny's bf16 training step on that CPU: 32 s).
pub(crate) const GIVE_UP_FIRST: f64 = 8.0;
/// Below this duration (seconds) a first step is not judged: one-off costs could be most of it, and finishing the
/// timing costs little.
pub(crate) const GIVE_UP_FIRST_AFTER: f64 = 1.0;

/// Whether timing a candidate stops after warm-up step `warmup` (0-based), which took `seconds` for a speed of
/// `images_per_s`, where the best candidate so far ran at `best` images/s (0 if none).
fn gives_up(warmup: usize, seconds: f64, images_per_s: f64, best: f64) -> bool {
    if warmup == 0 {
        seconds >= GIVE_UP_FIRST_AFTER && images_per_s * GIVE_UP_FIRST < best
    } else {
        images_per_s * GIVE_UP < best
    }
}

/// Images per second of `setting`: the median of TIMED steps after WARMUP, on a fresh model with random inputs;
/// `best` is the best speed measured so far (0 if none), to stop early at a candidate that cannot win. A training
/// step is training's own (the forward and backward pass, the loss scaler in fp16, AdamW); an inference step is a
/// forward pass in inference mode.
fn measure(req: &Request, setting: Setting, best: f64) -> Result<Timing> {
    ensure!(req.batch > 0, "the batch size must be at least 1");
    let device = req.device;
    let vs = VarStore::new(device);
    let model = req.model.build(&vs.root());
    let channels_last = setting.memory_format.is_channels_last();
    // Before the optimizer, as in training: the moments take the parameters' strides.
    if channels_last {
        vars_to_channels_last(&vs);
    }
    let b = req.batch as i64;
    let x = Tensor::randn([b, 5, NATIVE_SIZE, NATIVE_SIZE], (Kind::Float, device));
    let y = Tensor::randint(2, [b], (Kind::Float, device));
    let mut opt = AdamW::new(vs.variables().into_iter().map(|(n, t)| (n, t, 1e-2)).collect(), 0.9, 0.999, 1e-8);
    let mut scaler = GradScaler::default();
    let settings = StepSettings {
        precision: setting.precision,
        channels_last,
        input_size: req.model.input_size(),
        pos_weight: None,
        focal_gamma: None,
        label_smoothing: None,
    };
    let mut step = || -> Result<()> {
        let value = match req.workload {
            Workload::Train => {
                opt.zero_grad();
                let fp16 = setting.precision == Precision::Fp16;
                let scale = if fp16 { scaler.scale } else { 1.0 };
                let loss = forward_backward(&model, &x, &y, &settings, scale);
                optimizer_step(&mut opt, fp16.then_some(&mut scaler), None, 1e-6)?;
                loss.double_value(&[])
            }
            Workload::Infer => inference_mode(|| {
                let x = to_model_input(x.shallow_clone(), settings.input_size, channels_last);
                in_precision(setting.precision, device, || model.forward_t(&x, false))
                    .sum(Kind::Double)
                    .double_value(&[])
            }),
        };
        // Reading a value back waits for the device, so a step's time is its whole time.
        std::hint::black_box(value);
        Ok(())
    };
    let rate = |seconds: f64| req.batch as f64 / seconds.max(1e-9);
    for warmup in 0..WARMUP {
        let t = Instant::now();
        step()?;
        let seconds = t.elapsed().as_secs_f64();
        let images_per_s = rate(seconds);
        if gives_up(warmup, seconds, images_per_s, best) {
            return Ok(Timing { setting, images_per_s, stopped_early: true });
        }
    }
    let mut seconds = Vec::with_capacity(TIMED);
    for _ in 0..TIMED {
        let t = Instant::now();
        step()?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    Ok(Timing { setting, images_per_s: rate(seconds[TIMED / 2]), stopped_early: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    #[test]
    fn candidates_follow_the_device_and_what_was_given() {
        let cpu = candidates(Device::Cpu, Choice::Auto, Choice::Auto);
        assert_eq!(cpu.len(), 4);
        assert!(cpu.iter().all(|s| s.precision != Precision::Fp16), "no fp16 on a CPU");
        // A GPU: two precisions (bf16 or fp16 after its capability, and fp32), here without one to ask.
        let gpu = candidates(Device::Cuda(0), Choice::Auto, Choice::Auto);
        assert_eq!(gpu.len(), 4);
        assert!(gpu.iter().any(|s| s.precision == Precision::Fp32));
        let fixed = candidates(Device::Cpu, Choice::Is(Precision::Fp32), Choice::Auto);
        assert_eq!(fixed.len(), 2);
        assert!(fixed.iter().all(|s| s.precision == Precision::Fp32));
        let both = candidates(Device::Cpu, Choice::Is(Precision::Bf16), Choice::Is(MemoryFormat::Contiguous));
        assert_eq!(both, [Setting { precision: Precision::Bf16, memory_format: MemoryFormat::Contiguous }]);
    }

    #[test]
    fn a_slow_candidate_stops_at_the_first_step_only_when_it_is_long_and_far_behind() {
        let best = 1000.0;
        // Second warm-up step: 4x behind stops, 3x does not.
        assert!(gives_up(1, 0.5, 240.0, best));
        assert!(!gives_up(1, 0.5, 340.0, best));
        // First step: only beyond 8x and after a second; never without a best to compare with.
        assert!(gives_up(0, 2.0, 100.0, best));
        assert!(!gives_up(0, 2.0, 200.0, best), "5x behind on the first step may be one-off costs");
        assert!(!gives_up(0, 0.5, 10.0, best), "a short first step is not judged");
        assert!(!gives_up(0, 30.0, 1.0, 0.0) && !gives_up(1, 30.0, 1.0, 0.0));
    }

    #[test]
    fn a_failing_candidate_is_dropped_with_its_reason_and_all_failing_is_an_error() {
        let options = candidates(Device::Cpu, Choice::Auto, Choice::Auto);
        let fast = Setting { precision: Precision::Fp32, memory_format: MemoryFormat::ChannelsLast };
        let erring = Setting { precision: Precision::Bf16, memory_format: MemoryFormat::Contiguous };
        let panicking = Setting { precision: Precision::Bf16, memory_format: MemoryFormat::ChannelsLast };
        // One candidate returns an error, one panics inside libtorch (as tch reports a kernel's refusal or a GPU out
        // of memory); the fastest of the rest wins even though the failing ones come after it.
        let mut measure = |setting: Setting, _best: f64| -> Result<Timing> {
            if setting == erring {
                bail!("fused AdamW: params, grads, exp_avgs, and exp_avg_sqs must have same dtype\nframe #0 ...");
            }
            if setting == panicking {
                let a = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
                let _ = a.matmul(&a);
            }
            let images_per_s = if setting == fast { 900.0 } else { 300.0 };
            Ok(Timing { setting, images_per_s, stopped_early: false })
        };
        let (timings, failed) = measure_all(&options, &mut measure).unwrap();
        assert_eq!(timings[0].setting, fast);
        assert_eq!(timings.len(), 2, "{timings:?}");
        assert_eq!(failed.iter().map(|f| f.setting).collect::<Vec<_>>(), [erring, panicking]);
        assert_eq!(failed[0].error, "fused AdamW: params, grads, exp_avgs, and exp_avg_sqs must have same dtype");
        assert!(failed[1].error.contains("cannot be multiplied"), "{:?}", failed[1]);
        assert!(failed.iter().all(|f| !f.note().contains('\n') && f.note().contains("dropped")));
        // Every candidate failing: an error that names each and what to pass instead.
        let e = measure_all(&options, &mut |_, _| bail!("out of memory")).unwrap_err().to_string();
        assert!(e.starts_with("precision auto: every candidate") && e.contains("memory format explicitly"), "{e}");
        assert_eq!(e.matches("out of memory").count(), options.len(), "{e}");
    }

    #[test]
    fn measures_each_candidate_and_chooses_the_fastest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("autotune.json"));
        let model = ModelConfig::Vit(crate::models::vit::VitConfig::new(32, 16, 16, 1, 2));
        let req = Request {
            workload: Workload::Train,
            model_name: "tiny-vit",
            model: &model,
            batch: 4,
            device: Device::Cpu,
            precision: Choice::Auto,
            memory_format: Choice::Auto,
        };
        let (chosen, record, notes) = resolve(&req, &cache).unwrap();
        let record = record.expect("auto records what it measured");
        assert!(notes.is_empty(), "{notes:?}");
        assert!(!record.from_cache);
        assert_eq!(record.timings.len(), 4);
        assert!(record.timings.iter().all(|t| t.images_per_s > 0.0 && t.images_per_s.is_finite()));
        assert_eq!(chosen, record.timings[0].setting, "the fastest");
        assert!(record.timings.windows(2).all(|w| w[0].images_per_s >= w[1].images_per_s));
        // The second time the cache answers, with the same choice and the same timings.
        let (again, cached, _) = resolve(&req, &cache).unwrap();
        let cached = cached.unwrap();
        assert!(cached.from_cache);
        assert_eq!(again, chosen);
        for (c, r) in cached.timings.iter().zip(&record.timings) {
            assert_eq!(c.setting, r.setting);
            // serde_json reads back the f64 it wrote (its float_roundtrip feature, on in Cargo.toml).
            assert_eq!(c.images_per_s, r.images_per_s, "{c:?} vs {r:?}");
        }
        // Both settings given: nothing to measure, nothing recorded.
        let fixed = Request {
            precision: Choice::Is(Precision::Fp32),
            memory_format: Choice::Is(MemoryFormat::Contiguous),
            ..req
        };
        assert!(resolve(&fixed, &cache).unwrap().1.is_none());
    }
}
