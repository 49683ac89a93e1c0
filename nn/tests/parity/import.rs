//! Importing timm checkpoints: the first conv adapted to 5 channels, the classifier dropped, ViT position
//! embeddings resampled, and every malformed checkpoint refused with an error that says what is wrong.

use lensfind_nn::models::import::import_timm;

use super::*;

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

/// A pretrained import of the fixture's checkpoint after `edit`, which must fail with an error containing `want`,
/// leaving every variable of the model as it was (nothing half-loaded).
fn import_fails(fixture: &str, cfg: ModelConfig, edit: impl FnOnce(&mut HashMap<String, Tensor>), want: &str) {
    let fx = read(&fixtures().join(format!("import_{fixture}.safetensors")));
    let mut ckpt: HashMap<String, Tensor> = fx
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("checkpoint/").map(|k| (k.to_string(), v.shallow_clone())))
        .collect();
    edit(&mut ckpt);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timm.safetensors");
    let ckpt: Vec<(String, Tensor)> = ckpt.into_iter().map(|(k, v)| (k, v.contiguous())).collect();
    Tensor::write_safetensors(&ckpt, &path).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _model = cfg.build(&vs.root());
    let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect();
    let err = format!("{:#}", import_timm(&vs, &cfg, &path).expect_err("the import should fail"));
    assert!(err.contains(want) && err.contains("timm.safetensors"), "{err}");
    let after = vs.variables();
    for (k, v) in &before {
        assert!(after[k].equal(v), "{k} changed by a failed import");
    }
}

fn vit_at_48() -> ModelConfig {
    ModelConfig::Vit(VitConfig::new(48, 8, 24, 2, 3))
}

#[test]
fn import_refuses_a_pos_embed_without_the_batch_axis() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let p = c["pos_embed"].squeeze_dim(0);
        c.insert("pos_embed".into(), p);
    };
    import_fails("vit", vit_at_48(), edit, "pos_embed has shape [17, 24]; only [1, 1 + n*n, 24]");
}

#[test]
fn import_refuses_a_pos_embed_that_is_not_a_square_grid() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let p = c["pos_embed"].narrow(1, 0, 16); // a class token and 15 patches
        c.insert("pos_embed".into(), p);
    };
    import_fails("vit", vit_at_48(), edit, "pos_embed has shape [1, 16, 24]");
}

#[test]
fn import_refuses_a_pos_embed_of_two_rows() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let p = c["pos_embed"].repeat([2, 1, 1]);
        c.insert("pos_embed".into(), p);
    };
    import_fails("vit", vit_at_48(), edit, "pos_embed has shape [2, 17, 24]");
}

#[test]
fn import_refuses_a_pos_embed_of_another_width() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let p = c["pos_embed"].repeat([1, 1, 2]);
        c.insert("pos_embed".into(), p);
    };
    import_fails("vit", vit_at_48(), edit, "pos_embed has shape [1, 17, 48]");
}

#[test]
fn import_refuses_a_first_conv_that_is_not_4d() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let w = c["stem.0.weight"].flatten(2, 3);
        c.insert("stem.0.weight".into(), w);
    };
    import_fails(
        "convnext_convmlp",
        small_config("convnext_convmlp"),
        edit,
        "stem.0.weight (the first convolution) has shape [8, 3, 16]",
    );
}

#[test]
fn import_refuses_a_first_conv_with_other_output_channels() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let w = c["stem.0.weight"].repeat([2, 1, 1, 1]);
        c.insert("stem.0.weight".into(), w);
    };
    import_fails(
        "convnext_convmlp",
        small_config("convnext_convmlp"),
        edit,
        "has shape [16, 3, 4, 4]; the model's is [8, 5, 4, 4]",
    );
}

#[test]
fn import_refuses_a_first_conv_with_another_kernel() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let w = c["stem.0.weight"].narrow(2, 0, 3).narrow(3, 0, 3);
        c.insert("stem.0.weight".into(), w);
    };
    import_fails("convnext_convmlp", small_config("convnext_convmlp"), edit, "has shape [8, 3, 3, 3]");
}

#[test]
fn import_refuses_a_first_conv_without_input_channels() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let w = c["stem.0.weight"].narrow(1, 0, 0);
        c.insert("stem.0.weight".into(), w);
    };
    import_fails("convnext_convmlp", small_config("convnext_convmlp"), edit, "has shape [8, 0, 4, 4]");
}

#[test]
fn import_refuses_a_checkpoint_without_the_first_conv() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        c.remove("stem.0.weight");
    };
    import_fails("convnext_convmlp", small_config("convnext_convmlp"), edit, "lacks 1 of the model's");
}

#[test]
fn import_refuses_a_tensor_of_another_shape() {
    let edit = |c: &mut HashMap<String, Tensor>| {
        let w = c["stages.2.blocks.1.norm.weight"].narrow(0, 0, 20);
        c.insert("stages.2.blocks.1.norm.weight".into(), w);
    };
    import_fails(
        "convnext_convmlp",
        small_config("convnext_convmlp"),
        edit,
        "stages.2.blocks.1.norm.weight has shape [20] where the model's is [24]",
    );
}

#[test]
fn import_refuses_a_checkpoint_of_a_shallower_model() {
    let edit = |c: &mut HashMap<String, Tensor>| c.retain(|k, _| !k.starts_with("stages.3."));
    import_fails("convnext_convmlp", small_config("convnext_convmlp"), edit, "stages.3.blocks.0.conv_dw.bias");
}

#[test]
fn import_refuses_a_file_that_is_not_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timm.safetensors");
    std::fs::write(&path, b"PK\x03\x04 a zip, as torch.save writes").unwrap();
    let cfg = small_config("convnext_convmlp");
    let vs = VarStore::new(Device::Cpu);
    let _model = cfg.build(&vs.root());
    let err = format!("{:#}", import_timm(&vs, &cfg, &path).unwrap_err());
    assert!(err.contains("a timm checkpoint as safetensors"), "{err}");
}
