//! Where and how a model runs: the device (`--device`), the arithmetic precision, the memory format, and the
//! preparation of a batch for the model.

use anyhow::Result;
use serde::{Deserialize, Serialize};
pub use tch::Device;
use tch::Tensor;

use crate::models::layers::to_channels_last;
use crate::setting::{Setting, SettingError};
use crate::shim::{autocast, AutocastDtype};

/// Arithmetic precision of training and inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    /// bfloat16 autocast.
    Bf16,
    /// float16 autocast (with dynamic loss scaling in training).
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

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

/// How 4-D tensors (images, convolution weights) are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// NCHW, PyTorch's default.
    Contiguous,
    /// NHWC strides with NCHW shape (`torch.channels_last`).
    ChannelsLast,
}

impl MemoryFormat {
    pub fn is_channels_last(self) -> bool {
        self == MemoryFormat::ChannelsLast
    }
}

impl std::str::FromStr for MemoryFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "contiguous" => Ok(MemoryFormat::Contiguous),
            "channels-last" | "channels_last" => Ok(MemoryFormat::ChannelsLast),
            _ => Err(format!("{s:?}: expected contiguous or channels-last")),
        }
    }
}

impl std::fmt::Display for MemoryFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_channels_last() { "channels-last" } else { "contiguous" })
    }
}

/// A setting given on the command line, or `auto`: chosen on the machine at hand (precision and memory format:
/// measured, see [`crate::autotune`]; the collective backend: by the device, see [`crate::dist::Backend::choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<T> {
    Auto,
    Is(T),
}

impl<T: std::str::FromStr<Err = String>> std::str::FromStr for Choice<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Choice::Auto),
            _ => s.parse().map(Choice::Is).map_err(|e| format!("{e}, or auto")),
        }
    }
}

impl<T: Copy> Choice<T> {
    /// The given value, None for auto.
    pub fn fixed(self) -> Option<T> {
        match self {
            Choice::Auto => None,
            Choice::Is(v) => Some(v),
        }
    }
}

/// What `--device` names, as config.json records it: `auto` (the first GPU if there is one), `cpu`, `cuda` (the
/// GPU of the process's local rank) or `cuda:N`. Which device that is on this machine: [`DeviceName::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceName {
    #[default]
    Auto,
    Cpu,
    Cuda,
    CudaIndex(usize),
}

impl std::str::FromStr for DeviceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceName::Auto),
            "cpu" => Ok(DeviceName::Cpu),
            "cuda" => Ok(DeviceName::Cuda),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Ok(DeviceName::CudaIndex(n)),
                None => Err(format!("{other:?}: expected auto, cpu, cuda or cuda:N")),
            },
        }
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceName::Auto => f.write_str("auto"),
            DeviceName::Cpu => f.write_str("cpu"),
            DeviceName::Cuda => f.write_str("cuda"),
            DeviceName::CudaIndex(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceName {
    /// The device for the process with local rank `local_rank`: `auto` and `cuda` mean GPU `local_rank` of the
    /// node (torchrun's and Slurm's convention: one process per GPU). A GPU that is not there is an error that
    /// says what there is, before libtorch meets it (its own error is a panic with a long backtrace).
    pub fn resolve(self, local_rank: usize) -> Result<Device> {
        let device = match self {
            DeviceName::Auto if tch::Cuda::is_available() => Device::Cuda(local_rank),
            DeviceName::Auto | DeviceName::Cpu => Device::Cpu,
            DeviceName::Cuda => Device::Cuda(local_rank),
            DeviceName::CudaIndex(n) => Device::Cuda(n),
        };
        if let Device::Cuda(n) = device {
            check_gpu(self, n, tch::Cuda::device_count().max(0) as usize)?;
        }
        Ok(device)
    }
}

/// Fails unless GPU `index` is among the `count` that libtorch sees.
fn check_gpu(name: DeviceName, index: usize, count: usize) -> Result<()> {
    if count == 0 {
        let problem = "no CUDA GPU is visible to libtorch here (no NVIDIA driver, no GPU, or CUDA_VISIBLE_DEVICES \
                       hides them); use cpu (or auto, which takes a GPU when there is one)";
        return Err(SettingError::new(Setting::Device, name, problem).into());
    }
    if index >= count {
        let last = count - 1;
        let problem =
            format!("means GPU {index}, but this machine shows {count} (cuda:0 to cuda:{last}); use one of those");
        return Err(SettingError::new(Setting::Device, name, problem).into());
    }
    Ok(())
}

/// cuDNN's choice of convolution algorithms on CUDA: its heuristics by default, or with `LENSFIND_CUDNN_BENCHMARK=1`
/// a timed search for each new convolution shape (PyTorch's `torch.backends.cudnn.benchmark = True`). Measured on an
/// NVIDIA H200 (convnext_tiny@41, batch 1024, bf16, scripts/gpu-check.sh; BENCHMARKS.md): the search made lens-train's
/// start-up 20.4 s instead of 8.9 s (at batch 256, 43 s: some algorithms it tries take seconds at these shapes) for
/// no steady gain (31.7-32.4k images/s against 28.9-32.1k).
pub fn prepare_cuda(device: Device) {
    if device.is_cuda() {
        let on = std::env::var("LENSFIND_CUDNN_BENCHMARK").is_ok_and(|v| v == "1");
        tch::Cuda::cudnn_set_benchmark(on);
    }
}

/// The memory a process can still take on `device`, in bytes: a GPU's free memory as its driver counts it; on a
/// CPU the kernel's MemAvailable, or less where a cgroup (a Slurm job's, a container's) limits this process. None
/// where it cannot be read.
pub(crate) fn available_memory(device: Device) -> Option<u64> {
    match device {
        Device::Cuda(i) => crate::shim::cuda_mem_info(i).map(|(free, _)| free),
        _ => {
            let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
            let available = meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?
                * 1024;
            Some(cgroup_headroom().map_or(available, |h| h.min(available)))
        }
    }
}

/// What this process's cgroup (v2) still allows: memory.max less memory.current, None without a limit.
fn cgroup_headroom() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().and_then(|v| v.trim().parse::<u64>().ok());
    Some(read("memory.max")?.saturating_sub(read("memory.current").unwrap_or(0)))
}

/// Refuses a training batch whose estimated memory ([`crate::models::ModelConfig::training_bytes_per_image`])
/// exceeds what `device` has left, before anything is allocated for it: the error gives the estimate and the
/// largest batch that fits. (On a CPU such a run grows until the kernel kills it; on a GPU it stops at an allocation
/// deep inside the first step.)
pub(crate) fn check_batch_fits(model: &crate::models::ModelConfig, batch: usize, device: Device) -> Result<()> {
    let Some(available) = available_memory(device) else { return Ok(()) };
    batch_fits(model.training_bytes_per_image(), batch, available, device)
}

fn batch_fits(per_image: u64, batch: usize, available: u64, device: Device) -> Result<()> {
    let need = per_image.saturating_mul(batch as u64);
    if need <= available {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let fits = (available / per_image.max(1)).max(1);
    let place = if device.is_cuda() { "free on the GPU" } else { "available on this machine" };
    let problem = format!(
        "needs about {:.1} GiB for a training step ({:.1} MiB an image, estimated from the model), and {:.1} GiB is \
         {place}; try {fits} or less",
        gib(need),
        per_image as f64 / (1u64 << 20) as f64,
        gib(available)
    );
    Err(SettingError::new(Setting::BatchSize, batch, problem).into())
}

/// Runs `f` in `precision` on `device`.
pub(crate) fn in_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::Fp32 => f(),
        Precision::Bf16 => autocast(device, AutocastDtype::BFloat16, f),
        Precision::Fp16 => autocast(device, AutocastDtype::Float16, f),
    }
}

/// Prepares a batch for the model: its input size (bilinear resize), then the memory format.
pub(crate) fn to_model_input(x: Tensor, size: i64, channels_last: bool) -> Tensor {
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

/// How a model is executed: input side, precision, memory format, device, batch size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecSettings {
    pub size: i64,
    pub precision: Precision,
    pub channels_last: bool,
    pub device: Device,
    pub batch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_that_is_not_there_is_a_one_line_error_naming_what_to_pass() {
        let e = check_gpu(DeviceName::Cuda, 0, 0).unwrap_err().to_string();
        assert!(e.contains("no CUDA GPU") && e.contains("use cpu") && !e.contains('\n'), "{e}");
        let e = check_gpu(DeviceName::CudaIndex(2), 2, 2).unwrap_err().to_string();
        assert!(e.starts_with("device cuda:2: means GPU 2") && e.contains("shows 2 (cuda:0 to cuda:1)"), "{e}");
        check_gpu(DeviceName::CudaIndex(1), 1, 2).unwrap();
        // On this machine: a GPU past the last one that libtorch sees fails before anything is built on it.
        let count = tch::Cuda::device_count() as usize;
        let e = DeviceName::CudaIndex(count).resolve(0).unwrap_err().to_string();
        assert!(e.starts_with("device cuda:"), "{e}");
        assert_eq!(DeviceName::Cpu.resolve(3).unwrap(), Device::Cpu);
    }

    #[test]
    fn device_names_read_and_write_as_on_the_command_line_and_in_config_json() {
        for (text, name) in [
            ("auto", DeviceName::Auto),
            ("cpu", DeviceName::Cpu),
            ("cuda", DeviceName::Cuda),
            ("cuda:3", DeviceName::CudaIndex(3)),
        ] {
            assert_eq!(text.parse::<DeviceName>().unwrap(), name);
            assert_eq!(name.to_string(), text);
            assert_eq!(serde_json::to_string(&name).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<DeviceName>(&format!("\"{text}\"")).unwrap(), name);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""] {
            let e = bad.parse::<DeviceName>().unwrap_err();
            assert!(e.contains("expected auto, cpu, cuda or cuda:N"), "{bad:?}: {e}");
            assert!(serde_json::from_str::<DeviceName>(&format!("\"{bad}\"")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_batch_that_cannot_fit_is_refused_with_the_estimate_and_one_that_fits() {
        let mib = 1u64 << 20;
        batch_fits(4 * mib, 256, 1024 * mib, Device::Cpu).unwrap();
        let e = batch_fits(4 * mib, 1000, 1024 * mib, Device::Cpu).unwrap_err().to_string();
        assert!(e.starts_with("batch_size 1000: needs about 3.9 GiB") && e.contains("4.0 MiB an image"), "{e}");
        assert!(e.contains("try 256 or less"), "{e}");
        assert!(e.contains("available on this machine"), "{e}");
        let e = batch_fits(4 * mib, 1000, mib, Device::Cuda(0)).unwrap_err().to_string();
        assert!(e.contains("free on the GPU") && e.contains("try 1 or less"), "{e}");
        // This machine reports its memory, and the estimate of a real model fits a real batch in it.
        let available = available_memory(Device::Cpu).expect("/proc/meminfo");
        assert!(available > 64 * mib, "{available}");
        let tiny = crate::models::ModelConfig::from_name("convnext_tiny", None).unwrap();
        let per_image = tiny.training_bytes_per_image();
        assert!((3 * mib..5 * mib).contains(&per_image), "convnext_tiny@41: {per_image}");
        check_batch_fits(&tiny, 8, Device::Cpu).unwrap();
    }
}
