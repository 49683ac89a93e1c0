//! Images/second of a registered model, forward (inference) and forward+backward (training), for
//! scripts/bench-models.sh, which runs timm beside it.
//!
//! usage: bench_models MODEL BATCH ITERS fp32|bf16 contiguous|channels_last
//! prints: fwd_images_per_s fwd_bwd_images_per_s
#![allow(clippy::unwrap_used)] // a benchmark run by a script: a panic with its message is the error report

use std::time::Instant;

use lensfind_nn::models::layers::{to_channels_last, vars_to_channels_last};
use lensfind_nn::shim::{autocast, inference_mode, AutocastDtype};
use lensfind_nn::ModelConfig;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, batch, iters, precision, layout] = args.as_slice() else {
        eprintln!("usage: bench_models MODEL BATCH ITERS fp32|bf16 contiguous|channels_last");
        std::process::exit(2);
    };
    let (batch, iters): (i64, usize) = (batch.parse().unwrap(), iters.parse().unwrap());
    let threads = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let cfg = ModelConfig::from_name(model, None).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = cfg.build(&vs.root());
    let size = cfg.input_size();
    let mut x = Tensor::randn([batch, 5, size, size], (Kind::Float, Device::Cpu));
    if layout == "channels_last" {
        vars_to_channels_last(&vs);
        x = to_channels_last(&x);
    }
    let run = |train: bool| {
        let step = || {
            if train {
                let out = net.forward_t(&x, true);
                out.mean(Kind::Float).backward();
            } else {
                let _ = inference_mode(|| net.forward_t(&x, false));
            }
        };
        match precision.as_str() {
            "bf16" => autocast(Device::Cpu, AutocastDtype::BFloat16, step),
            _ => step(),
        }
    };
    let mut rates = Vec::new();
    for train in [false, true] {
        for _ in 0..2 {
            run(train); // warm-up: allocator, oneDNN primitive caches
        }
        let t = Instant::now();
        for _ in 0..iters {
            run(train);
        }
        rates.push(batch as f64 * iters as f64 / t.elapsed().as_secs_f64());
    }
    println!("{:.1} {:.1}", rates[0], rates[1]);
}
