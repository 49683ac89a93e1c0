"""Writes the fixtures that prove lensfind's models and optimizer match timm's and PyTorch's, into tests/fixtures/.

For each family, a reduced configuration (few blocks, narrow dims) with random weights: the state_dict under its
timm keys, an input batch, timm's eval-mode output, and one training step's loss (BCE-with-logits on fixed
labels) and every gradient. Layer-scale and norm weights are randomised too, so every tensor changes the output.

The optimizer is checked on given gradients, not on gradients the test computes: an update compares well only
where the gradients are the same, and the first AdamW step moves each weight by about lr x sign(gradient), so a
gradient at rounding level (the key part of a ViT's qkv bias has an exact gradient of 0: softmax ignores a constant
added to every key) would make any comparison of one step depend on the CPU's kernels. So, from the state_dict,
three torch.optim.AdamW steps (the plain single-tensor implementation, not the fused kernel lensfind uses) with
three gradient sets: timm's gradient G, then -G/2, then 2 x G rolled by one element (flattened); both sides make the
last two exactly (a power-of-two scale and a roll round nothing). Two parameter groups: weight decay 0.05 for
matrices and convolutions, none for biases, norms and embeddings of one dimension; learning rates 1e-3, 5e-4,
2.5e-4. Saved: the parameters after each step and the moments after the third.

Also the pretrained-import fixtures: a timm-format 3-channel, 10-class checkpoint and what timm's own adaptation
makes of it (first conv to 5 channels, ViT position embeddings resampled to a new grid).

Run with the project's .venv (timm installed by scripts/setup.sh):
    .venv/bin/python scripts/make_parity_fixtures.py [--out tests/fixtures]
With --full DIR it instead writes the full-size convnext_tiny (41x41 input) and vit_small_patch16_224 (224x224)
fixtures (weights, outputs, gradients: ~100-200 MB each) for the heavier check (nn/tests/parity/ runs it; it fails when timm is missing).
"""
import argparse
import json
import os

import torch
import timm
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models._manipulate import adapt_input_conv
from timm.models.convnext import ConvNeXt
from timm.models.vision_transformer import VisionTransformer

SMALL = {
    "convnext_convmlp": dict(
        family="convnext", kwargs=dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), conv_mlp=True), size=41),
    "convnext_linear": dict(
        family="convnext", kwargs=dict(depths=(1, 2, 1, 1), dims=(8, 12, 16, 20), conv_mlp=False), size=41),
    "vit": dict(
        family="vit", kwargs=dict(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3), size=32),
}


def build(family, kwargs, in_chans=5, num_classes=1):
    if family == "convnext":
        return ConvNeXt(in_chans=in_chans, num_classes=num_classes, **kwargs)
    return VisionTransformer(in_chans=in_chans, num_classes=num_classes, **kwargs)


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def fixture(model, size, gen, batch=4):
    """State dict, input, eval output, and one training step's loss and gradients."""
    x = torch.randn(batch, 5, size, size, generator=gen)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0][:batch])
    out = {f"param/{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        out["output"] = model(x).detach().clone()
    model.train()
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
    loss.backward()
    for k, p in model.named_parameters():
        out[f"grad/{k}"] = p.grad.detach().clone().contiguous()
    out.update({"input": x, "label": y, "loss": loss.detach().reshape(1)})
    return out


# The optimizer check (keep in step with nn/tests/parity/).
ADAMW_LRS = [1e-3, 5e-4, 2.5e-4]
ADAMW_DECAY = 0.05


def adamw_gradient(g, step):
    """The gradient set of step 1, 2 or 3, made from timm's gradient g without rounding."""
    if step == 1:
        return g.clone()
    if step == 2:
        return g * -0.5
    return (g.flatten().roll(1) * 2.0).reshape(g.shape)


def adamw_steps(tensors):
    """Three torch.optim.AdamW steps from the fixture's parameters on the given gradient sets."""
    names = sorted(k[len("grad/"):] for k in tensors if k.startswith("grad/"))
    params = {n: tensors[f"param/{n}"].clone().requires_grad_(True) for n in names}
    decay = [params[n] for n in names if params[n].dim() >= 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    assert decay and no_decay
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=ADAMW_LRS[0], betas=(0.9, 0.999), eps=1e-8, foreach=False, fused=False)
    out = {}
    for step, lr in enumerate(ADAMW_LRS, start=1):
        for group in opt.param_groups:
            group["lr"] = lr
        for n in names:
            params[n].grad = adamw_gradient(tensors[f"grad/{n}"], step)
        opt.step()
        for n in names:
            out[f"adamw/step{step}/{n}"] = params[n].detach().clone().contiguous()
    for n in names:
        state = opt.state[params[n]]
        out[f"adamw/exp_avg/{n}"] = state["exp_avg"].clone().contiguous()
        out[f"adamw/exp_avg_sq/{n}"] = state["exp_avg_sq"].clone().contiguous()
    return out


def small(out_dir):
    for name, spec in SMALL.items():
        gen = torch.Generator().manual_seed(1234)
        torch.manual_seed(0)
        model = build(spec["family"], spec["kwargs"])
        randomise(model, gen)
        tensors = fixture(model, spec["size"], gen)
        tensors.update(adamw_steps(tensors))
        meta = {"family": spec["family"], "config": json.dumps(spec["kwargs"]), "size": str(spec["size"]),
                "timm": timm.__version__, "torch": torch.__version__}
        save_file(tensors, os.path.join(out_dir, f"parity_{name}.safetensors"), metadata=meta)

    # Pretrained import: a 3-channel, 10-class checkpoint and timm's adaptation of it to 5 channels, 1 logit.
    gen = torch.Generator().manual_seed(99)
    for name, spec in [("convnext_convmlp", SMALL["convnext_convmlp"]), ("vit", SMALL["vit"])]:
        src = build(spec["family"], spec["kwargs"], in_chans=3, num_classes=10)
        randomise(src, gen)
        sd = {k: v.detach().clone().contiguous() for k, v in src.state_dict().items()}
        first = "stem.0.weight" if spec["family"] == "convnext" else "patch_embed.proj.weight"
        expect = {f"expect/{first}": adapt_input_conv(5, sd[first].clone()).contiguous()}
        meta = {"family": spec["family"], "config": json.dumps(spec["kwargs"]), "first_conv": first}
        if spec["family"] == "vit":
            # Fine-tuning at a new input size: 32 -> 48 pixels, a 4x4 -> 6x6 grid of patches.
            expect["expect/pos_embed"] = resample_abs_pos_embed(
                sd["pos_embed"], new_size=[6, 6], old_size=[4, 4], num_prefix_tokens=1,
                interpolation="bicubic", antialias=True)
            meta["new_size"] = "48"
        tensors = {**{f"checkpoint/{k}": v for k, v in sd.items()}, **expect}
        save_file(tensors, os.path.join(out_dir, f"import_{name}.safetensors"), metadata=meta)


def full(out_dir):
    for name, size in [("convnext_tiny", 41), ("vit_small_patch16_224", 224)]:
        gen = torch.Generator().manual_seed(7)
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, in_chans=5, num_classes=1)
        randomise(model, gen)
        tensors = fixture(model, size, gen, batch=2)
        save_file(tensors, os.path.join(out_dir, f"full_{name}.safetensors"),
                  metadata={"model": name, "size": str(size)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    ap.add_argument("--full", metavar="DIR", help="write the full-size fixtures into DIR instead")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if a.full:
        os.makedirs(a.full, exist_ok=True)
        full(a.full)
    else:
        os.makedirs(a.out, exist_ok=True)
        small(a.out)


if __name__ == "__main__":
    main()
