//! Where and how a model runs: the device (`--device`), the arithmetic precision, the memory format, and the
//! preparation of a batch for the model.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
pub use tch::Device;
use tch::Tensor;

use crate::models::layers::to_channels_last;
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

    pub fn from_channels_last(channels_last: bool) -> MemoryFormat {
        if channels_last {
            MemoryFormat::ChannelsLast
        } else {
            MemoryFormat::Contiguous
        }
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

/// A setting given on the command line, or `auto`: measured on the machine at hand (see [`crate::autotune`]).
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

/// The device named by `--device` (`auto`: the first GPU if there is one).
pub fn parse_device(name: &str) -> Result<Device> {
    rank_device(name, 0)
}

/// The device of the process with local rank `local_rank`: `auto` and `cuda` mean GPU `local_rank` of the node
/// (torchrun's and Slurm's convention: one process per GPU). A GPU that is not there is an error that says what
/// there is, before libtorch meets it (its own error is a panic with a long backtrace).
pub fn rank_device(name: &str, local_rank: usize) -> Result<Device> {
    let device = match name {
        "auto" if tch::Cuda::is_available() => Device::Cuda(local_rank),
        "auto" | "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(local_rank),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!("--device {other:?}: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = device {
        check_gpu(name, n, tch::Cuda::device_count().max(0) as usize)?;
    }
    Ok(device)
}

/// Fails unless GPU `index` is among the `count` that libtorch sees.
fn check_gpu(name: &str, index: usize, count: usize) -> Result<()> {
    if count == 0 {
        bail!(
            "--device {name}: no CUDA GPU is visible to libtorch here (no NVIDIA driver, no GPU, or \
             CUDA_VISIBLE_DEVICES hides them); pass --device cpu (or auto, which takes a GPU when there is one)"
        );
    }
    if index >= count {
        let last = count - 1;
        bail!("--device {name} means GPU {index}, but this machine shows {count} (cuda:0 to cuda:{last}); pass one of those");
    }
    Ok(())
}

/// Lets cuDNN time its algorithms for each new convolution shape and keep the fastest (PyTorch's
/// `torch.backends.cudnn.benchmark = True`, which its users set for fixed-shape training): shapes here change only at
/// the last batch of an epoch. `LENSFIND_CUDNN_BENCHMARK=0` leaves cuDNN's heuristics instead.
pub fn prepare_cuda(device: Device) {
    if device.is_cuda() {
        let off = std::env::var("LENSFIND_CUDNN_BENCHMARK").is_ok_and(|v| v == "0");
        tch::Cuda::cudnn_set_benchmark(!off);
    }
}

/// Runs `f` in `precision` on `device`.
pub fn in_precision<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::Fp32 => f(),
        Precision::Bf16 => autocast(device, AutocastDtype::BFloat16, f),
        Precision::Fp16 => autocast(device, AutocastDtype::Float16, f),
    }
}

/// Prepares a batch for the model: its input size (bilinear resize), then the memory format.
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

/// How a model is executed: input side, precision, memory format, device, batch size.
#[derive(Debug, Clone, Copy)]
pub struct ExecSettings {
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
        let e = check_gpu("cuda", 0, 0).unwrap_err().to_string();
        assert!(e.contains("no CUDA GPU") && e.contains("--device cpu") && !e.contains('\n'), "{e}");
        let e = check_gpu("cuda:2", 2, 2).unwrap_err().to_string();
        assert!(e.contains("shows 2 (cuda:0 to cuda:1)"), "{e}");
        check_gpu("cuda:1", 1, 2).unwrap();
        // On this machine: a GPU past the last one that libtorch sees fails before anything is built on it.
        let count = tch::Cuda::device_count() as usize;
        let e = rank_device(&format!("cuda:{count}"), 0).unwrap_err().to_string();
        assert!(e.contains("--device cuda:"), "{e}");
        assert_eq!(rank_device("cpu", 3).unwrap(), Device::Cpu);
    }
}
