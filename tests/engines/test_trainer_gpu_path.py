"""The trainer's fast path: mixed precision, NHWC, cuDNN autotuning, torch.compile, DDP.

Everything that can run on a CPU does (bf16 autocast is the CPU's AMP; fp16 with loss scaling and
channels_last run there too); the CUDA-only checks skip without a GPU.
"""

import itertools
from pathlib import Path

import ignite.distributed as idist
import pytest
import torch
import torch.distributed as dist
from monai.data import DataLoader
from torch import nn

import lsmseg.engines.trainer as trainer_module
from lsmseg.data.sit import generate_sit, make_rows
from lsmseg.engines import SemiSupervisedTrainer
from lsmseg.keys import Mode
from lsmseg.methods import Domain, LatentSpaceMapping

METHODS = ["lsm", "pix2pix", "cyclegan"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _net() -> LatentSpaceMapping:
    torch.manual_seed(0)
    return LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 2)], ngf=4, ndf=4, image_size=32
    )


def _loader(pin_memory: bool = False) -> DataLoader:
    """Batches of 4 mixing paired, x-only and y-only rows, so every critic has work in step one."""
    rows = make_rows(*generate_sit(12, size=32, seed=0), proportion=0.5)["train"]
    by_mode = [[r for r in rows if r["mode"] == m] for m in Mode]
    mixed = [r for group in itertools.zip_longest(*by_mode) for r in group if r is not None]
    return DataLoader(mixed, batch_size=4, pin_memory=pin_memory)


def _trainer(method: str, device: str = "cpu", max_epochs: int = 1, **kwargs) -> SemiSupervisedTrainer:
    """A tiny trainer: one step, or ``max_epochs`` epochs of two steps each."""
    loader = _loader(pin_memory=device == "cuda")
    kwargs.setdefault("epoch_length", 1 if max_epochs == 1 else None)
    return SemiSupervisedTrainer(device, max_epochs, loader, _net(), method=method, image_ndf=4, **kwargs)


def _convs(trainer: SemiSupervisedTrainer) -> list[nn.Module]:
    modules = [*trainer.network.generators.modules(), *trainer.step.critics.modules()]
    return [m for m in modules if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


def _record_conv_dtypes(trainer: SemiSupervisedTrainer) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    for conv in _convs(trainer):
        conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    return seen


def _snapshot(trainer: SemiSupervisedTrainer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = [p.detach().clone() for p in trainer.network.generators.parameters()]
    return gen, [p.detach().clone() for p in trainer.step.critics.parameters()]


def _assert_both_updated(trainer: SemiSupervisedTrainer, before: tuple[list, list]) -> None:
    gen, crit = before
    assert any(
        not torch.equal(a, b) for a, b in zip(gen, trainer.network.generators.parameters(), strict=True)
    )
    assert any(not torch.equal(a, b) for a, b in zip(crit, trainer.step.critics.parameters(), strict=True))
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.state.metrics.values())


@pytest.mark.parametrize("method", METHODS)
def test_amp_on_cpu_runs_the_step_in_bf16_without_a_scaler(method: str) -> None:
    trainer = _trainer(method, amp=True)
    seen = _record_conv_dtypes(trainer)
    before = _snapshot(trainer)
    trainer.run()
    assert trainer.amp_dtype == torch.bfloat16 and trainer.scaler is None
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())  # master weights
    _assert_both_updated(trainer, before)


@pytest.mark.parametrize("method", ["lsm", "cyclegan"])
def test_fp16_shares_one_loss_scaler_between_critic_and_generator_optimisers(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fp16 path (GPUs without bf16) run on the CPU: per step, the critic optimiser then the
    generator optimiser step through one scaler, updated once; overflowing first steps are
    skipped and the scale backs off until both optimisers step."""
    monkeypatch.setattr(trainer_module, "amp_dtype", lambda device: torch.float16)
    calls: list[str] = []
    step, update = torch.amp.GradScaler.step, torch.amp.GradScaler.update

    def spy_step(scaler, optimizer, *args, **kwargs):
        calls.append("critic" if optimizer is trainer.critic_optimizer else "generators")
        return step(scaler, optimizer, *args, **kwargs)

    def spy_update(scaler, *args, **kwargs):
        calls.append("update")
        return update(scaler, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", spy_step)
    monkeypatch.setattr(torch.amp.GradScaler, "update", spy_update)
    trainer = _trainer(method, amp=True, max_epochs=6)  # 12 steps
    seen = _record_conv_dtypes(trainer)
    before = _snapshot(trainer)
    trainer.run()
    assert isinstance(trainer.scaler, torch.amp.GradScaler) and seen == {torch.float16}
    assert calls == ["critic", "generators", "update"] * trainer.state.iteration
    assert trainer.scaler.get_scale() < 2.0**16  # it backed off from the first, overflowing steps
    _assert_both_updated(trainer, before)


@pytest.mark.parametrize("method", ["lsm", "pix2pix"])
def test_channels_last_puts_weights_and_inputs_in_nhwc(method: str) -> None:
    trainer = _trainer(method, channels_last=True)
    convs = _convs(trainer)
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    mask_stem = trainer.network.generators.encoders["label"].model[1]
    inputs: list[torch.Tensor] = []
    mask_stem.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    batch = trainer._to_device(next(iter(_loader())))
    assert batch["label"].is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        trainer.step.forward(trainer.generators, trainer.step.batch(batch))
    # The one-hot mask (2 channels) reaches the encoder in NHWC (the reflection pad keeps it).
    if method == "lsm":
        assert inputs and inputs[0].is_contiguous(memory_format=torch.channels_last)
    trainer.run()
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)  # Adam keeps it


def test_betas_follow_each_reference_unless_given() -> None:
    assert _trainer("lsm").betas == (0.9, 0.999)
    assert _trainer("cyclegan").betas == (0.5, 0.999)
    assert _trainer("pix2pix", betas=(0.9, 0.99)).betas == (0.9, 0.99)


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_distributed_wraps_generators_and_image_critics_in_their_own_ddp(method: str, tmp_path: Path) -> None:
    """One-process gloo group: the DDP wrapping and the frozen-critic generator update work."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        trainer = _trainer(method, distributed=True)
        ddp = nn.parallel.DistributedDataParallel
        assert isinstance(trainer.generators, ddp) and isinstance(trainer.critics, ddp)
        assert (
            trainer.critics.module is trainer.step.critics and trainer.frozen_critics is trainer.step.critics
        )
        before = _snapshot(trainer)
        trainer.run()
        _assert_both_updated(trainer, before)
    finally:
        dist.destroy_process_group()
        idist.sync()  # ignite caches the process group (epoch-loss all-reduce): forget it (ignite docs)


@pytest.mark.slow
def test_compile_trains_one_step() -> None:
    """torch.compile of the generators (called with the stage's plan) and of the critics, both
    critic roles. Pix2Pix is the smallest graph that has all three (E_x, h_xy, D_y and one
    critic; LSM's full plan takes twice as long to build); every step goes through the same
    ``_wrap``. Still minutes on 2 busy CPU cores: marked slow."""
    trainer = _trainer("pix2pix", compile=True)
    assert hasattr(trainer.generators, "_orig_mod") and hasattr(trainer.critics, "_orig_mod")
    before = _snapshot(trainer)
    trainer.run()
    _assert_both_updated(trainer, before)


@cuda
def test_cuda_turns_on_cudnn_benchmark() -> None:
    torch.backends.cudnn.benchmark = False
    _trainer("basic", device="cuda")
    assert torch.backends.cudnn.benchmark


@cuda
@pytest.mark.parametrize("method", METHODS)
def test_cuda_path_with_amp_and_channels_last(method: str) -> None:
    trainer = _trainer(method, device="cuda", amp=True, channels_last=True)
    assert all(p.is_cuda for p in [*trainer.network.parameters(), *trainer.step.critics.parameters()])
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in _convs(trainer))
    seen = _record_conv_dtypes(trainer)
    before = _snapshot(trainer)
    trainer.run()
    assert seen == {trainer.amp_dtype}
    assert (trainer.scaler is None) == (trainer.amp_dtype == torch.bfloat16)
    _assert_both_updated(trainer, before)
