//! lensfind's models against timm: outputs, one training step and AdamW, on fixtures written by
//! scripts/make_parity_fixtures.py (reduced configurations with random weights, timm's results saved beside them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lensfind_nn::models::convnext::ConvNextConfig;
use lensfind_nn::models::import::import_timm;
use lensfind_nn::models::vit::VitConfig;
use lensfind_nn::optim::AdamW;
use lensfind_nn::ModelConfig;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

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

fn check_family(name: &str) {
    let fx = read(&fixtures().join(format!("parity_{name}.safetensors")));
    let cfg = small_config(name);
    let (vs, model) = load(&cfg, &fx);

    let out = tch::no_grad(|| model.forward_t(&fx["input"], false));
    let err = rel_err(&out, &fx["output"]);
    assert!(err < 1e-5, "{name}: eval output differs from timm by {err:e}");

    // One training step: BCE-with-logits, gradients, AdamW.
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut opt =
        AdamW::new(params.iter().map(|(n, t)| (n.clone(), t.shallow_clone(), 1e-2)).collect(), 0.9, 0.999, 1e-8);
    opt.zero_grad();
    let logits = model.forward_t(&fx["input"], true).squeeze_dim(1);
    let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&fx["label"], None, None, Reduction::Mean);
    let loss_err = rel_err(&loss.reshape([1]), &fx["loss"]);
    assert!(loss_err < 1e-5, "{name}: loss differs by {loss_err:e}");
    loss.backward();
    for (n, p) in &params {
        let err = rel_err(&p.grad(), &fx[&format!("grad/{n}")]);
        assert!(err < 1e-4, "{name}: gradient of {n} differs by {err:e}");
    }
    opt.step(1e-3);
    for (n, p) in &params {
        let err = rel_err(p, &fx[&format!("updated/{n}")]);
        assert!(err < 1e-5, "{name}: {n} after one AdamW step differs by {err:e}");
    }
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
fn import_adapts_first_conv_and_drops_classifier() {
    let path = fixtures().join("import_convnext_convmlp.safetensors");
    let fx = read(&path);
    let cfg = small_config("convnext_convmlp");
    let vs = VarStore::new(Device::Cpu);
    let _model = cfg.build(&vs.root());
    // As saved from a DataParallel wrapper: the prefix must be ignored.
    let (_dir, ckpt) = timm_checkpoint(&fx, "module.");
    let report = import_timm(&vs, &cfg, &ckpt).unwrap();
    assert_eq!(report.adapted.len(), 1, "{report:?}");
    assert_eq!(report.adapted[0].0, "stem.0.weight");
    let stem = vs.variables()["stem.0.weight"].shallow_clone();
    assert!(rel_err(&stem, &fx["expect/stem.0.weight"]) < 1e-7);
    assert_eq!(report.missing, ["head.fc.bias", "head.fc.weight"]);
    let unexpected: Vec<&str> = report.unexpected.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(unexpected, ["head.fc.bias", "head.fc.weight"]);
    assert_eq!(report.loaded.len() + 3, vs.variables().len());
    // Everything else was copied exactly.
    let norm = vs.variables()["stages.2.blocks.1.norm.weight"].shallow_clone();
    assert_eq!(rel_err(&norm, &fx["checkpoint/stages.2.blocks.1.norm.weight"]), 0.0);
}

#[test]
fn import_resamples_vit_position_embeddings() {
    let path = fixtures().join("import_vit.safetensors");
    let fx = read(&path);
    let cfg = ModelConfig::Vit(VitConfig::new(48, 8, 24, 2, 3)); // trained at 32, fine-tuned at 48
    let vs = VarStore::new(Device::Cpu);
    let _model = cfg.build(&vs.root());
    let (_dir, ckpt) = timm_checkpoint(&fx, "");
    let report = import_timm(&vs, &cfg, &ckpt).unwrap();
    let adapted: Vec<&str> = report.adapted.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(adapted, ["patch_embed.proj.weight", "pos_embed"]);
    let vars = vs.variables();
    assert!(
        rel_err(&vars["pos_embed"], &fx["expect/pos_embed"]) < 1e-6,
        "{}",
        rel_err(&vars["pos_embed"], &fx["expect/pos_embed"])
    );
    assert!(rel_err(&vars["patch_embed.proj.weight"], &fx["expect/patch_embed.proj.weight"]) < 1e-7);
    assert_eq!(report.missing, ["head.bias", "head.weight"]);
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

/// The heavier check: full-size convnext_tiny (41x41) and vit_small_patch16_224 against timm, when the project's
/// .venv has timm (scripts/setup.sh installs it). The fixtures (~100 MB each) are written to a temporary directory.
#[test]
fn full_size_models_match_timm() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let has_timm =
        std::process::Command::new(&python).args(["-c", "import timm"]).output().is_ok_and(|o| o.status.success());
    if !has_timm {
        eprintln!("skipped: no timm in .venv (run scripts/setup.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make_parity_fixtures.py");
    let out = std::process::Command::new(&python).arg(&script).arg("--full").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, size) in [("convnext_tiny", None), ("vit_small_patch16_224", Some(224))] {
        let fx = read(&dir.path().join(format!("full_{name}.safetensors")));
        let cfg = ModelConfig::from_name(name, size).unwrap();
        let (_vs, model) = load(&cfg, &fx);
        let out = tch::no_grad(|| model.forward_t(&fx["input"], false));
        let err = rel_err(&out, &fx["output"]);
        eprintln!("{name}: max relative difference to timm {err:e}");
        assert!(err < 1e-4, "{name}: output differs from timm by {err:e}");
    }
}
