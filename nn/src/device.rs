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
