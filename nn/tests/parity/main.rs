//! lensfind's models against timm and its AdamW against torch.optim.AdamW, on fixtures written by
//! scripts/make_parity_fixtures.py (reduced configurations with random weights, timm's and torch's results saved
//! beside them): outputs, loss and gradients of one training step; three optimizer steps on given gradients;
//! (import.rs) timm checkpoints imported, and malformed ones refused.
//! Every tolerance is written beside its check with its reason; they hold on any x86-64 CPU (AVX2, AVX-512, AMX),
//! not only on the machine that wrote the fixtures.
#![allow(clippy::unwrap_used)] // a panic is how a test fails, also in the helpers the tests call

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lensfind_nn::models::convnext::ConvNextConfig;
use lensfind_nn::models::vit::VitConfig;
use lensfind_nn::optim::AdamW;
use lensfind_nn::ModelConfig;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

mod import;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_iter().collect()
}

/// The reduced configurations of make_parity_fixtures.py's SMALL (keep the two in step).
fn small_config(name: &str) -> ModelConfig {
    match name {
        "convnext_convmlp" => ModelConfig::ConvNext(ConvNextConfig::new(&[1, 1, 2, 1], &[8, 16, 24, 32], true)),
        "convnext_linear" => ModelConfig::ConvNext(ConvNextConfig::new(&[1, 2, 1, 1], &[8, 12, 16, 20], false)),
        "vit" => ModelConfig::Vit(VitConfig::new(32, 8, 24, 2, 3)),
        _ => unreachable!(),
    }
}

/// Largest |a - b| relative to the largest |b| (with a floor, for tensors that are all near zero).
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let diff = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[]);
    let scale = b.to_kind(Kind::Double).abs().max().double_value(&[]).max(1e-6);
    diff / scale
}

/// float32's machine epsilon (2^-23): the spacing of float32 values just above 1, twice the largest relative
/// error of one rounding.
const EPS32: f64 = f32::EPSILON as f64;

fn f64s(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Double)
}

fn l2(t: &Tensor) -> f64 {
    f64s(t).square().sum(Kind::Double).double_value(&[]).sqrt()
}

/// Fails unless |got - want| <= bound elementwise (all three the same shape), naming the worst element. Returns
/// the largest |got - want| / bound, for the record of how much room the bound leaves.
fn assert_within(what: &str, got: &Tensor, want: &Tensor, bound: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let diff = (f64s(got) - f64s(want)).abs();
    let excess = &diff - f64s(bound);
    let worst = excess.argmax(None, false).int64_value(&[]);
    let at = |t: &Tensor| f64s(t).flatten(0, -1).double_value(&[worst]);
    assert!(
        at(&excess) <= 0.0,
        "{what}: element {worst} is {:e}, should be {:e} (allowed difference {:e})",
        at(got),
        at(want),
        at(bound)
    );
    (diff / f64s(bound)).max().double_value(&[])
}

/// Writes the fixture's "checkpoint/" tensors as a plain timm checkpoint, keys prefixed with `prefix`.
fn timm_checkpoint(fx: &HashMap<String, Tensor>, prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timm.safetensors");
    let plain: Vec<(String, Tensor)> = fx
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("checkpoint/").map(|k| (format!("{prefix}{k}"), v.shallow_clone())))
        .collect();
    Tensor::write_safetensors(&plain, &path).unwrap();
    (dir, path)
}

/// Builds the model and loads the fixture's timm weights by their timm names; every variable must be there.
fn load(cfg: &ModelConfig, fx: &HashMap<String, Tensor>) -> (VarStore, lensfind_nn::Model) {
    let vs = VarStore::new(Device::Cpu);
    let model = cfg.build(&vs.root());
    let vars = vs.variables();
    let in_fixture = fx.keys().filter(|k| k.starts_with("param/")).count();
    assert_eq!(vars.len(), in_fixture, "our variables vs timm's state_dict");
    tch::no_grad(|| {
        for (name, var) in &vars {
            let src = fx.get(&format!("param/{name}")).unwrap_or_else(|| panic!("timm has no {name}"));
            var.shallow_clone().copy_(src);
        }
    });
    assert_eq!(cfg.param_count(), vars.values().map(|v| v.numel() as i64).sum::<i64>(), "param_count");
    (vs, model)
}

/// The model's forward output, loss and gradients against timm's on the fixture's input.
fn check_family(name: &str) {
    let fx = read(&fixtures().join(format!("parity_{name}.safetensors")));
    let cfg = small_config(name);
    let (vs, model) = load(&cfg, &fx);

    let out = tch::no_grad(|| model.forward_t(&fx["input"], false));
    // Relative to the largest logit, which is O(1) here (asserted, so the tolerance is not relative to a number
    // near 0): float32 forward passes through a few blocks with another summation order (other kernels, another
    // CPU) differ by ~1e-6 relative; 1e-5 leaves 10x, and a wrong layer (an eps, a missing layer scale) moves
    // the logits by far more.
    assert!(f64s(&fx["output"]).abs().max().double_value(&[]) > 0.1, "{name}: logits too small to compare");
    let err = rel_err(&out, &fx["output"]);
    assert!(err < 1e-5, "{name}: eval output differs from timm by {err:e}");

    // The loss to the same 1e-5 as the output it is computed from.
    check_training_step(name, &vs, &model, &fx, 1e-5);
}

/// One training step against timm's: the BCE-with-logits loss on the fixture's labels within `loss_tolerance`
/// (relative), then the gradients (`check_gradients`).
fn check_training_step(
    name: &str,
    vs: &VarStore,
    model: &lensfind_nn::Model,
    fx: &HashMap<String, Tensor>,
    loss_tolerance: f64,
) {
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let logits = model.forward_t(&fx["input"], true).squeeze_dim(1);
    let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&fx["label"], None, None, Reduction::Mean);
    let loss_err = rel_err(&loss.reshape([1]), &fx["loss"]);
    assert!(loss_err < loss_tolerance, "{name}: loss differs from timm's by {loss_err:e}");
    loss.backward();
    check_gradients(name, &params, fx);
}

/// Our gradients against timm's, tensor by tensor, in the L2 norm: `|ours - timm's| <= 1e-4 (|timm's| + rms)`,
/// where rms = |G| sqrt(n / N) is what the tensor's norm would be if its n elements had the average magnitude of
/// the whole model's gradient G (N elements). Each gradient element is a float32 sum of many products, so another
/// summation order (other kernels: AVX2, AVX-512, AMX, CUDA) moves it by a few epsilons (1.2e-7) of the terms
/// summed; measured here with ATen's, oneDNN's and MKL's kernels forced to other instruction sets: at most 2e-6 of
/// that scale. The terms are as large as the gradients flowing through the layer, not as the result: a tensor
/// whose exact gradient is ~0 (the key part of a ViT's qkv bias: softmax ignores a constant added to every key)
/// holds only rounding noise, so its own norm is no scale; the rms term is. A wrong gradient (a missing term, a
/// transposed weight) is off by O(1) of the tensor's norm.
fn check_gradients(name: &str, params: &[(String, Tensor)], fx: &HashMap<String, Tensor>) {
    let timm: Vec<Tensor> = params.iter().map(|(n, _)| f64s(&fx[&format!("grad/{n}")])).collect();
    let total: i64 = timm.iter().map(Tensor::numel).sum::<usize>() as i64;
    let norm = timm.iter().map(|g| l2(g).powi(2)).sum::<f64>().sqrt();
    assert!(norm > 0.0, "{name}: timm's gradient is 0");
    let mut worst = 0.0f64;
    for ((n, p), want) in params.iter().zip(&timm) {
        let got = p.grad();
        assert!(got.defined(), "{name}: no gradient for {n}");
        let rms = norm * (want.numel() as f64 / total as f64).sqrt();
        let (diff, scale) = (l2(&(f64s(&got) - want)), l2(want) + rms);
        assert!(diff <= 1e-4 * scale, "{name}: gradient of {n} differs from timm's by {:e} of its scale", diff / scale);
        worst = worst.max(diff / scale);
    }
    eprintln!("{name}: gradients differ from timm's by at most {worst:.1e} of their scale (allowed 1e-4)");
}

/// The learning rates and weight decay of the optimizer fixture (make_parity_fixtures.py's ADAMW_*).
const ADAMW_LRS: [f64; 3] = [1e-3, 5e-4, 2.5e-4];
const ADAMW_DECAY: f64 = 0.05;

/// The gradient set of step 1, 2 or 3, made from timm's gradient `g` as the fixture script makes it (exactly: a
/// power-of-two scale and a roll round nothing).
fn adamw_gradient(g: &Tensor, step: usize) -> Tensor {
    match step {
        1 => g.copy(),
        2 => g * -0.5,
        _ => (g.flatten(0, -1).roll([1], [0]) * 2.0).reshape(g.size()),
    }
}

/// Our AdamW (libtorch's fused kernel on our moments) against torch.optim.AdamW's plain implementation, on the
/// same given gradients, three steps: the parameters after each step and the moments after the third. Given the
/// same gradients AdamW is well conditioned, so the two differ by rounding alone (the kernels order the operations
/// differently), bounded elementwise in units of float32's epsilon (EPS32 = 1.2e-7):
/// - a parameter by 4 EPS32 of itself plus 100 EPS32 of the learning rates summed so far: each step rounds the
///   parameter twice to float32 (after the decay, after the update; half an EPS32 each, 3 EPS32 over three
///   steps), and moves it by at most ~3 lr with an update computed through ~10 roundings in another order;
/// - exp_avg by 8 EPS32 of the sum of |g| over the steps: two or three roundings per step of terms no larger than
///   that (the moment itself may cancel to ~0 as the gradients change sign, so its own size is no scale);
/// - exp_avg_sq by 8 EPS32 of itself: a sum of squares, which cannot cancel.
///
/// Measured on AVX2 with ATen's, oneDNN's and MKL's kernels also forced to other instruction sets: at most a
/// quarter of the parameters' bound is used (about one float32 rounding), a fifth of exp_avg_sq's.
fn check_adamw(name: &str) {
    let fx = read(&fixtures().join(format!("parity_{name}.safetensors")));
    let mut names: Vec<String> = fx.keys().filter_map(|k| k.strip_prefix("grad/").map(str::to_string)).collect();
    names.sort();
    let params: Vec<Tensor> = names.iter().map(|n| fx[&format!("param/{n}")].copy().set_requires_grad(true)).collect();
    let groups: Vec<(String, Tensor, f64)> = names
        .iter()
        .zip(&params)
        .map(|(n, p)| (n.clone(), p.shallow_clone(), if p.dim() >= 2 { ADAMW_DECAY } else { 0.0 }))
        .collect();
    assert!(groups.iter().any(|g| g.2 > 0.0) && groups.iter().any(|g| g.2 == 0.0), "two weight-decay groups");
    let mut opt = AdamW::new(groups, 0.9, 0.999, 1e-8);
    let mut abs_grad_sum: Vec<Tensor> = params.iter().map(|p| f64s(p).zeros_like()).collect();
    let mut room = [0.0f64; 3]; // the largest difference / bound: parameters, exp_avg, exp_avg_sq
    for (step, lr) in ADAMW_LRS.iter().enumerate().map(|(k, lr)| (k + 1, *lr)) {
        opt.zero_grad();
        let grads: Vec<Tensor> = names.iter().map(|n| adamw_gradient(&fx[&format!("grad/{n}")], step)).collect();
        // Sets each gradient to exactly g: d/dp sum(p * g) = 1 * g.
        let total =
            params.iter().zip(&grads).map(|(p, g)| (p * g).sum(Kind::Float)).fold(Tensor::from(0f32), |a, b| a + b);
        total.backward();
        for ((n, p), g) in names.iter().zip(&params).zip(&grads) {
            assert!(p.grad().equal(g), "{name}: the gradient of {n} was not set exactly");
        }
        for (s, g) in abs_grad_sum.iter_mut().zip(&grads) {
            *s = &*s + f64s(g).abs();
        }
        opt.step(lr).unwrap();
        let lr_sum: f64 = ADAMW_LRS[..step].iter().sum();
        for (n, p) in names.iter().zip(&params) {
            let want = &fx[&format!("adamw/step{step}/{n}")];
            let bound = f64s(want).abs() * (4.0 * EPS32) + 100.0 * EPS32 * lr_sum;
            let used = assert_within(&format!("{name}: {n} after AdamW step {step}"), p, want, &bound);
            room[0] = room[0].max(used);
        }
    }
    for ((n, slot), grad_sum) in names.iter().zip(&opt.slots).zip(&abs_grad_sum) {
        assert_eq!(&slot.name, n);
        let m = &fx[&format!("adamw/exp_avg/{n}")];
        let used = assert_within(&format!("{name}: exp_avg of {n}"), &slot.exp_avg, m, &(grad_sum * (8.0 * EPS32)));
        room[1] = room[1].max(used);
        let v = &fx[&format!("adamw/exp_avg_sq/{n}")];
        let used =
            assert_within(&format!("{name}: exp_avg_sq of {n}"), &slot.exp_avg_sq, v, &(f64s(v) * (8.0 * EPS32)));
        room[2] = room[2].max(used);
    }
    eprintln!(
        "{name}: AdamW differs from torch's by at most {:.2} of the bound (parameters), {:.2} (exp_avg), {:.2} (exp_avg_sq)",
        room[0], room[1], room[2]
    );
}

#[test]
fn convnext_conv_mlp_matches_timm() {
    check_family("convnext_convmlp");
}

#[test]
fn convnext_linear_mlp_matches_timm() {
    check_family("convnext_linear");
}

#[test]
fn vit_matches_timm() {
    check_family("vit");
}

#[test]
fn adamw_matches_torch_on_convnext_conv_mlp_gradients() {
    check_adamw("convnext_convmlp");
}

#[test]
fn adamw_matches_torch_on_convnext_linear_mlp_gradients() {
    check_adamw("convnext_linear");
}

#[test]
fn adamw_matches_torch_on_vit_gradients() {
    check_adamw("vit");
}

#[test]
fn registry_builds_every_model_name() {
    for spec in lensfind_nn::registry() {
        let cfg = &spec.config;
        assert!(cfg.param_count() > 0);
        assert_eq!(cfg.input_size(), if spec.name.starts_with("vit") { 224 } else { 41 });
    }
    assert!(ModelConfig::from_name("resnet50", None).is_err());
    assert!(ModelConfig::from_name("vit_tiny_patch16_224", Some(41)).is_err(), "41 is not a multiple of 16");
    // The full-size tiny model: parameters counted from shapes equal the built model's.
    let cfg = ModelConfig::from_name("convnext_tiny", None).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = cfg.build(&vs.root());
    let n: i64 = vs.variables().values().map(|v| v.numel() as i64).sum();
    assert_eq!(n, cfg.param_count());
    let out = tch::no_grad(|| model.forward_t(&Tensor::zeros([2, 5, 41, 41], (Kind::Float, Device::Cpu)), false));
    assert_eq!(out.size(), [2, 1]);
}

/// The heavier check: full-size convnext_tiny (41x41) and vit_small_patch16_224 against timm: outputs, loss and
/// gradients. The fixtures (weights, outputs and gradients, 100-200 MB each) are written by timm into a temporary
/// directory, so timm must be in the project's .venv (scripts/setup.sh installs it); without it the test fails,
/// unless LENSFIND_SKIP names it.
#[test]
fn full_size_models_match_timm() {
    let python = match lensfind_e2e::python_with(&["timm", "safetensors"]) {
        Ok(p) => p,
        Err(why) => return lensfind_e2e::cannot_run("full_size_models_match_timm", &why),
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make_parity_fixtures.py");
    let out = std::process::Command::new(&python).arg(&script).arg("--full").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, size) in [("convnext_tiny", None), ("vit_small_patch16_224", Some(224))] {
        let fx = read(&dir.path().join(format!("full_{name}.safetensors")));
        let cfg = ModelConfig::from_name(name, size).unwrap();
        let (vs, model) = load(&cfg, &fx);
        let out = tch::no_grad(|| model.forward_t(&fx["input"], false));
        let err = rel_err(&out, &fx["output"]);
        eprintln!("{name}: max relative difference to timm {err:e}");
        // 1e-4: a full-size model is 12-18 blocks deep, each adding float32 rounding of ~1e-6 relative.
        assert!(err < 1e-4, "{name}: output differs from timm by {err:e}");
        check_training_step(name, &vs, &model, &fx, 1e-4);
    }
}
