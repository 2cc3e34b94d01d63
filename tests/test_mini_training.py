"""Unit tests of the shared training plumbing in ``scripts/mini_training.py``."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import mini_training  # noqa: E402


def test_loss_log_block_means(capsys):
    loss_log = mini_training.LossLog(steps=25, label="unet", digits=3, every=10)
    for step in range(1, 26):
        loss_log.add(step, unet_loss=float(step), other=1.0)
    # Blocks 1-10, 11-20 and the partial block 21-25.
    assert loss_log.history == [
        {"step": 10, "unet_loss": 5.5, "other": 1.0},
        {"step": 20, "unet_loss": 15.5, "other": 1.0},
        {"step": 25, "unet_loss": 23.0, "other": 1.0},
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["unet step 10/25 unet_loss=5.500 other=1.000", "unet step 20/25 unet_loss=15.500 other=1.000",
                     "unet step 25/25 unet_loss=23.000 other=1.000"]


def test_loss_log_rounds_history():
    loss_log = mini_training.LossLog(steps=1, digits=2)
    loss_log.add(1, loss=0.123456)
    assert loss_log.history == [{"step": 1, "loss": 0.12}]


@pytest.mark.parametrize("clip", [True, False])
def test_optimizer_step_clipping(clip):
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    loss = (weight * torch.full((4,), 10.0)).sum()  # gradient 10 per entry, norm 20
    mini_training.optimizer_step(loss, optimizer, scheduler, [weight] if clip else None, max_norm=1.0)
    expected_norm = 1.0 if clip else 20.0
    assert torch.linalg.vector_norm(weight.detach()).item() == pytest.approx(expected_norm, rel=1e-5)
    assert scheduler.get_last_lr() == [0.5]  # the learning-rate schedule moved one step


def test_training_device_accepts_cpu():
    assert mini_training.training_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("name", "words"), [
    ("tpu", ["'tpu'", "cpu or cuda"]),
    ("meta", ["'meta'", "cpu or cuda only"]),
    ("cuda", ["'cuda'", "no CUDA GPU found", "--device cpu"]),
])
def test_training_device_rejects_unusable(name, words, monkeypatch):
    # Every machine looks like CI here: no GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device") as error:
        mini_training.training_device(name)
    for word in words:
        assert word in str(error.value)


def test_sd_scripts_reject_missing_gpu(tmp_path, monkeypatch):
    import train_mini_sd
    import train_mini_sd_inpainting

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for script in (train_mini_sd, train_mini_sd_inpainting):
        with pytest.raises(ValueError, match="pass --device cpu"):
            script.main(["--device", "cuda", "--output-dir", str(tmp_path)])
    # The option is checked before any data is drawn or any file is written.
    assert not any(tmp_path.iterdir())


def test_sd_training_loops_follow_model_device(monkeypatch):
    """Run one step of each Stable Diffusion training loop with the models on PyTorch's meta device.

    A batch tensor left on the CPU raises where an elementwise operation meets the model's
    meta tensors, so this finds a missing ``.to(device)`` without a GPU. It is not
    exhaustive: convolutions and embedding lookups accept CPU inputs on meta.
    """
    import train_mini_sd
    import train_mini_sd_inpainting

    meta = torch.device("meta")
    # Meta tensors hold no values, so the optimizer step and loss logging are skipped.
    monkeypatch.setattr(mini_training, "optimizer_step", lambda loss, *args, **kwargs: None)
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: 0.0 if self.is_meta else real_item(self))
    monkeypatch.setattr(train_mini_sd, "UNET_BATCH_SIZE", 4)
    monkeypatch.setattr(train_mini_sd_inpainting, "BATCH_SIZE", 4)
    clip_dir = Path(__file__).resolve().parents[1] / "data" / "models" / "mini-clip"
    tokenizer = train_mini_sd.load_tokenizer(clip_dir)
    text_encoder = train_mini_sd.load_text_encoder(clip_dir).to(meta)
    generator = torch.Generator().manual_seed(0)
    means = torch.randn((8, 4, 16, 16), generator=generator)
    stds = torch.rand((8, 4, 16, 16), generator=generator) * 0.1
    captions = [["a red circle"]] * 8

    unet = train_mini_sd.build_unet(text_encoder.config.hidden_size, (16, 32, 32)).to(meta)
    history = train_mini_sd.train_unet(unet, tokenizer, text_encoder, (means, stds), captions, steps=1, seed=0)
    assert history == [{"step": 1, "unet_loss": 0.0}]
    history = train_mini_sd.refine_unet(unet, tokenizer, text_encoder, (means, stds), captions, steps=1, seed=0)
    assert history == [{"step": 1, "refine_loss": 0.0}]

    inpainting_unet = train_mini_sd_inpainting.build_inpainting_unet(
        train_mini_sd.build_unet(text_encoder.config.hidden_size, (16, 32, 32))).to(meta)
    data = {"means": means, "stds": stds, "masked_means": means, "masked_stds": stds,
            "masks": (torch.rand((8, 1, 16, 16), generator=generator) > 0.5).float(), "captions": captions}
    history = train_mini_sd_inpainting.train_inpainting(inpainting_unet, tokenizer, text_encoder, data, steps=1, seed=0)
    assert history == [{"step": 1, "unet_loss": 0.0}]

    vae = train_mini_sd.build_vae().to(meta)
    history = train_mini_sd.train_vae(vae, torch.rand((8, 3, 64, 64), generator=generator) * 2 - 1, steps=1, seed=0)
    assert history == [{"step": 1, "vae_loss": 0.0}]
