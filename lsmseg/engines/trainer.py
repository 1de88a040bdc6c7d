"""The semi-supervised training engine: one forward, a critic update, a generator update.

``SemiSupervisedTrainer._iteration`` reads like the paper (STYLE.md 4): one generator forward
of exactly what the active terms need, critic update on detached outputs, masked loss terms,
generator update, events. What the forward computes, what the critics judge and which terms
exist is the method family's step (``lsmseg.methods.steps``: LSM and its presets, Pix2Pix,
CycleGAN); the trainer is the loop around it (stages, optimisers, AMP, DDP, channels_last,
``torch.compile``). Early stopping, stage changes and checkpoints are handlers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.metrics import Average
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from torch import nn

from lsmseg.engines.signals import Interrupt
from lsmseg.methods import Lambdas, LatentSpaceMapping, Stage, Step, make_step, method_stages


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fewest host ops per step: ``fused`` where every parameter is a floating
    CPU or CUDA tensor, else ``foreach``.

    The same algorithm as the per-parameter loop, in one pass per parameter (last-bit rounding
    differs, ~1e-8). The default (``foreach`` on CUDA) kept ~2.5 ms of host work per optimiser
    and step on an H200, the host-bound GPU step of issue 12; on the CPU fused Adam steps the
    ngf 16 generators in 1.9 ms instead of 6.8 (the loop) or 5.5 (``foreach``).
    """
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None, foreach=None if fused else True)


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device supports it (no loss scaling needed), else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class SemiSupervisedTrainer(Trainer):
    """Trains a :class:`LatentSpaceMapping` on rows that are paired, x-only or y-only.

    Args:
        device: where the step runs. On CUDA the trainer sets ``torch.backends.cudnn.benchmark``
            (process-wide): every step has the same shapes, so cuDNN's search for the fastest
            convolution algorithms runs once and pays off on every later step.
        max_epochs: epoch budget of each stage (IODA has three stages, the others one).
        train_data_loader: yields dicts with every domain's values and ``mode`` (or ``present``);
            give it ``pin_memory=True`` on CUDA so the non-blocking copies overlap the step.
        network: the LSM module (all encoders, decoders, links and latent critics). Its state
            dict is what checkpoints hold; Pix2Pix's and CycleGAN's image-space critics belong
            to the step (``trainer.step.critics``) and are not part of it.
        method: ``basic``, ``sop``, ``ioda``, ``lsm``, an ablation ``lsmABCD``, ``pix2pix``,
            ``cyclegan``, or ``unet`` / ``meanteacher`` (with a ``SegmentationUNet`` network).
        lambdas: loss weights, see :class:`lsmseg.methods.Lambdas`.
        learning_rate: Adam learning rate of generators and critics (paper: 1e-4).
        betas: Adam betas; None takes the method's reference: (0.9, 0.999) for LSM and its
            presets, (0.5, 0.999) for Pix2Pix and CycleGAN.
        amp: mixed precision: bf16 where supported (CPUs, Ampere and later GPUs), else fp16 with
            one loss scaler shared by the critic and generator optimisers.
        channels_last: NHWC memory format for 4-D inputs and convolution weights (tensor-core
            GPUs; bundles turn it on for CUDA).
        distributed: wrap generators and critics in their own DistributedDataParallel.
        compile: ``torch.compile`` the step's generators and critics.
        gan_loss: image-space GAN loss of Pix2Pix / CycleGAN, ``bce`` or ``lsgan``; None takes
            each reference (``bce`` for Pix2Pix, ``lsgan`` for CycleGAN).
        image_ndf, image_critic_layers: width and layers of the image-space PatchGANs
            (references: 64, 3).
        handlers: ignite / MONAI handlers to attach.
    """

    resume_hint: str | None = None  # how to continue after an interrupt; set by ResumableCheckpoint

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: LatentSpaceMapping,
        method: str = "lsm",
        lambdas: Mapping[str, float] | None = None,
        learning_rate: float = 1e-4,
        betas: Sequence[float] | None = None,
        epoch_length: int | None = None,
        non_blocking: bool = True,
        amp: bool = False,
        channels_last: bool = False,
        distributed: bool = False,
        compile: bool = False,
        gan_loss: str | None = None,
        image_ndf: int = 64,
        image_critic_layers: int = 3,
        handlers: Sequence | None = None,
    ) -> None:
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
        self.stages: list[Stage] = method_stages(
            method, network.names, Lambdas.from_dict(dict(lambdas or {}))
        )
        self.stage_epochs = int(max_epochs)
        device = torch.device(device)
        super().__init__(
            device=device,
            max_epochs=self.stage_epochs * len(self.stages),
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            amp=amp,
            decollate=False,  # no postprocessing in the step: decollating costs time for nothing
        )
        self.method = method
        self.network = network
        # Every stage of a method shares its family's step (IODA's three are all latent).
        self.step: Step = make_step(self.stages[0].step, network, image_ndf, image_critic_layers, gan_loss)
        self.learning_rate = float(learning_rate)
        self.betas = (float(betas[0]), float(betas[1])) if betas is not None else self.step.betas
        self.channels_last = channels_last
        self.amp_dtype = amp_dtype(device)
        self._place(device)
        self.generators, self.critics, self.frozen_critics = self._wrap(distributed, compile)
        self.stage_index = 0
        self.stage_start_epoch = 0
        self.stage_controller: Any = None  # set by StagedEarlyStopping when attached
        # Epoch means of the step's losses: one vector per step, accumulated where the step runs
        # (no per-step host sync); under DDP ignite all-reduces it, so the mean is over all ranks.
        self._epoch_losses = Average(device=device)
        self._loss_names: list[str] = []  # what the vector holds, in order
        self._begin_stage(0)
        self.add_event_handler(Events.EPOCH_STARTED, self._reset_epoch_losses)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._publish_epoch_losses)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._stage_budget)
        for h in (self.step, *(handlers or ())):  # the step's own hooks (Mean Teacher's EMA) first
            h.attach(self)

    def _place(self, device: torch.device) -> None:
        """Network and step critics onto the device (NHWC with ``channels_last``)."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # same shapes every step: autotune convs once
        for module in (self.network, self.step.critics):
            module.to(device)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _wrap(self, distributed: bool, compile: bool) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(generators, critics for the critic update, critics for the generator update).

        Generators and critics each get their own DistributedDataParallel: they are updated by
        separate backwards. The generator update scores fakes with the bare critics, whose
        weights are frozen then: DDP must not wait for gradients it will never see.
        """
        generators, critics = self.step.generators, self.step.critics
        frozen = critics
        if distributed:
            ids = [self.state.device] if self.state.device.type == "cuda" else None
            # Terms switched off (basic, IODA stages, Pix2Pix's unused y -> x) leave modules unused.
            generators = nn.parallel.DistributedDataParallel(
                generators, device_ids=ids, find_unused_parameters=True
            )
            critics = nn.parallel.DistributedDataParallel(critics, device_ids=ids)
        if compile:
            generators = torch.compile(generators)  # type: ignore[assignment]
            frozen = torch.compile(frozen)  # type: ignore[assignment]
            # Without DDP both critic roles are the same module: one compiled wrapper serves both.
            critics = frozen if critics is self.step.critics else torch.compile(critics)  # type: ignore[assignment]
        return generators, critics, frozen

    # --- stages -------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.stages[self.stage_index]

    @property
    def is_final_stage(self) -> bool:
        return self.stage_index == len(self.stages) - 1

    def _begin_stage(self, index: int) -> None:
        """Each stage gets its own optimisers (IODA: one per stage), built fresh."""
        self.stage_index = index
        self.step.begin(self.stage)
        params = [p for p in self.network.generators.parameters() if p.requires_grad]
        self.optimizer = adam(params, self.learning_rate, self.betas)
        self.critic_optimizer = (
            adam(self.step.critics.parameters(), self.learning_rate, self.betas)
            if self.stage.adversarial
            else None
        )

    def next_stage(self) -> bool:
        """Move to the next stage; False (and terminate) after the last one."""
        if self.is_final_stage:
            self.terminate()
            return False
        self.stage_start_epoch = self.state.epoch
        self._begin_stage(self.stage_index + 1)
        self.logger.info(f"stage {self.stage.name} starts at epoch {self.state.epoch + 1}")
        return True

    def _stage_budget(self, engine: Engine) -> None:
        # Without a controller, stages change on their epoch budget alone.
        if self.stage_controller is None and self.state.epoch - self.stage_start_epoch >= self.stage_epochs:
            self.next_stage()

    # --- step ------------------------------------------------------------------------------------
    def _to_device(self, batchdata: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batchdata.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.state.device, non_blocking=self.non_blocking)
                if self.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
                out[k] = v
        return out

    def _autocast(self) -> Any:
        return torch.autocast(self.state.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        batch = self.step.batch(self._to_device(batchdata), batchdata)  # host modes: no sync
        step, weights = self.step, self.stage.weights
        with self._autocast():
            out = step.forward(self.generators, batch)  # the one generator forward of the step
        output: dict[str, torch.Tensor] = {}
        if self.critic_optimizer is not None:
            # Critic update on detached outputs: no second forward through the generators.
            with self._autocast():
                critic_loss = step.critic_loss(self.critics, out, batch, weights)
            self._update(critic_loss, self.critic_optimizer)
            output["critic"] = critic_loss.detach()
        step.critics.requires_grad_(False)  # the generator update must not accumulate critic grads
        with self._autocast():
            terms = step.generator_terms(self.frozen_critics, out, batch, weights)
            loss = torch.stack([weights[k] * v for k, v in terms.items()]).sum()
        self._update(loss, self.optimizer)
        step.critics.requires_grad_(True)
        if self.scaler is not None:
            self.scaler.update()  # once per step, after both optimisers (torch.amp docs)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        output.update({"loss": loss.detach(), **{t.name: v.detach() for t, v in terms.items()}})
        self._loss_names = list(output)  # fixed within an epoch: stages change between epochs
        self._epoch_losses.update(torch.stack([v.float() for v in output.values()]))
        return output

    def _update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and step; with fp16 through the shared loss scaler (it skips non-finite steps)."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
        else:
            loss.backward()
            optimizer.step()

    def run(self) -> None:  # type: ignore[override]
        """Train; a loss scaler exists only for fp16 (bf16 and fp32 need none).

        MONAI's ``Trainer.run`` would build a CUDA-only ``torch.cuda.amp.GradScaler``. SIGINT
        and SIGTERM stop the run after the current iteration with one line and exit status
        130 / 143 (:mod:`lsmseg.engines.signals`).
        """
        fp16 = self.amp and self.amp_dtype == torch.float16
        # MONAI declares the CUDA-only scaler type; torch.amp's is the device-generic one.
        self.scaler = torch.amp.GradScaler(self.state.device.type) if fp16 else None  # type: ignore[assignment]
        with Interrupt(self, self._interrupted) as interrupt:
            Workflow.run(self)
        interrupt.exit_if_signalled()

    def _interrupted(self, signum: int) -> str:
        """The one line an interrupted run ends with."""
        name = signal.Signals(signum).name
        hint = self.resume_hint or "no resumable checkpoint is kept: the run starts over when rerun"
        return f"training stopped by {name} in epoch {self.state.epoch}; {hint}"

    # --- epoch losses: averaged on the device, read once per epoch (no per-step host sync) --------
    def _reset_epoch_losses(self, engine: Engine) -> None:
        # Validation switches the network to eval(); training resumes in train() mode.
        self.network.train()
        self.step.critics.train()
        self._epoch_losses.reset()
        self._loss_names = []

    def _publish_epoch_losses(self, engine: Engine) -> None:
        if self._loss_names:
            means = self._epoch_losses.compute().tolist()  # the one host sync of the epoch
            self.state.metrics.update({f"train_{k}": v for k, v in zip(self._loss_names, means, strict=True)})
        self.state.metrics["stage"] = self.stage_index

    @torch.no_grad()
    def stage_loss(self, loader: Iterable) -> float:
        """Mean weighted loss of the current stage's non-adversarial terms over a (validation) loader.

        IODA's pre-training stages stop early on this, as they have no translation to score.
        """
        weights = {t: w for t, w in self.stage.weights.items() if not t.adversarial}
        total, n = 0.0, 0
        for batchdata in loader:
            batch = self.step.batch(self._to_device(batchdata))
            with self._autocast():
                out = self.step.forward(self.generators, batch)
                terms = self.step.generator_terms(self.frozen_critics, out, batch, weights)
            total += float(sum(weights[k] * v for k, v in terms.items()))
            n += 1
        return total / max(n, 1)
