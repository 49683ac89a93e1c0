//! Times the gradient all-reduce of data-parallel training: run under torchrun's variables (one process per rank;
//! see scripts/bench-dist.sh). Fills a model's gradients with noise and averages them with the bucketed all-reduce
//! lens-train uses; prints the median time per step on rank 0.
//!
//! `RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 allreduce [MODEL] [STEPS] [gloo|nccl] [cpu|cuda]`
//! (MODEL defaults to convnext_tiny). With WORLD_SIZE=1 it still builds the group (to exercise NCCL on one GPU).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lensfind_nn::dist::{Backend, Env, ProcessGroup};
use lensfind_nn::optim::AdamW;
use lensfind_nn::train::ddp::{check_same_layout, GradSync, BUCKET_BYTES};
use lensfind_nn::ModelConfig;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map_or("convnext_tiny", String::as_str);
    let steps: usize = args.get(1).map_or(Ok(20), |s| s.parse()).context("STEPS")?;
    let backend = if args.get(2).map(String::as_str) == Some("nccl") { Backend::Nccl } else { Backend::Gloo };
    let device = if args.get(3).map(String::as_str) == Some("cuda") { Device::Cuda(0) } else { Device::Cpu };
    let var = |k: &str| std::env::var(k).ok();
    let env = match Env::from_env()? {
        Some(env) => env,
        None => Env {
            rank: 0,
            world: 1,
            local_rank: 0,
            master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port: var("MASTER_PORT").map_or(Ok(29500), |p| p.parse()).context("MASTER_PORT")?,
            launcher: "torchrun",
            attempt: 0,
            agent_store: false,
        },
    };
    let device = if device.is_cuda() { Device::Cuda(env.local_rank) } else { device };
    let pg = ProcessGroup::init(&env, backend, Duration::from_secs(120))?;
    let vs = VarStore::new(device);
    let _model = ModelConfig::from_name(model, None)?.build(&vs.root());
    // In name order, as lens-train has them: every rank must send the same buckets.
    let mut params: Vec<(String, Tensor, f64)> = vs.variables().into_iter().map(|(k, v)| (k, v, 0.0)).collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let opt = AdamW::new(params, 0.9, 0.999, 1e-8);
    let numel: usize = opt.slots.iter().map(|s| s.param.numel()).sum();
    // Real gradients through a backward pass, so every parameter has one, then noise.
    let loss =
        opt.slots.iter().map(|s| s.param.sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, device)), |a, b| a + b);
    loss.backward();
    check_same_layout(&pg, &opt)?;
    let mut sync = GradSync::new(&opt, BUCKET_BYTES);
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 3 {
        pg.barrier()?;
        if device.is_cuda() {
            tch::Cuda::synchronize(env.local_rank as i64);
        }
        let t = Instant::now();
        sync.all_reduce(&pg, &opt, 0.0)?;
        if device.is_cuda() {
            tch::Cuda::synchronize(env.local_rank as i64);
        }
        if i >= 3 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    // The collectives alone: the same bytes in buffers of the same sizes, without gathering the gradients.
    let raw: Vec<Tensor> =
        (0..sync.buckets()).map(|_| Tensor::zeros([(numel / sync.buckets()) as i64], (Kind::Float, device))).collect();
    let mut raw_times = Vec::with_capacity(steps);
    for i in 0..steps + 3 {
        pg.barrier()?;
        let t = Instant::now();
        for b in &raw {
            pg.all_reduce_sum(b)?;
        }
        if device.is_cuda() {
            tch::Cuda::synchronize(env.local_rank as i64);
        }
        if i >= 3 {
            raw_times.push(t.elapsed().as_secs_f64());
        }
    }
    raw_times.sort_by(f64::total_cmp);
    if env.rank == 0 {
        println!("all-reduce alone: median {:.1} ms", raw_times[raw_times.len() / 2] * 1e3);
        let median = times[times.len() / 2];
        println!(
            "{model}: {numel} gradients ({:.1} MB) in {} buckets, {} ranks, {backend} on {device:?}: median {:.1} ms per step ({:.2} GB/s algorithm bandwidth)",
            numel as f64 * 4e-6,
            sync.buckets(),
            env.world,
            median * 1e3,
            numel as f64 * 4e-9 / median
        );
    }
    pg.finish()
}
