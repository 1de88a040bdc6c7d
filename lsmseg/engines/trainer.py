"""The semi-supervised training engine: one forward, a critic update, a generator update.

``SemiSupervisedTrainer._iteration`` reads like the paper (STYLE.md 4): encode, map, decode
(one forward of exactly what the active terms need), masked loss terms, critic update on
detached codes, generator update. Early stopping, stage changes and checkpoints are handlers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from torch import nn

from lsmseg.methods import Batch, Lambdas, LatentSpaceMapping, Plan, Stage, method_stages


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device supports it (no loss scaling needed), else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class SemiSupervisedTrainer(Trainer):
    """Trains a :class:`LatentSpaceMapping` on rows that are paired, x-only or y-only.

    Args:
        device: where the step runs.
        max_epochs: epoch budget of each stage (IODA has three stages, the others one).
        train_data_loader: yields dicts with every domain's values and ``mode`` (or ``present``).
        network: the LSM module (all encoders, decoders, links and critics).
        method: ``basic``, ``sop``, ``ioda``, ``lsm`` or an ablation ``lsmABCD``.
        lambdas: loss weights, see :class:`lsmseg.methods.Lambdas`.
        learning_rate: Adam learning rate of generators and critics (paper: 1e-4).
        betas: Adam betas (paper: 0.9, 0.999).
        amp: mixed precision (bf16 where supported, fp16 with loss scaling otherwise).
        channels_last: NHWC memory format for image tensors and convolution weights (GPU).
        distributed: wrap generators and critics in their own DistributedDataParallel.
        compile: ``torch.compile`` the generators and critics.
        handlers: ignite / MONAI handlers to attach.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: LatentSpaceMapping,
        method: str = "lsm",
        lambdas: Mapping[str, float] | None = None,
        learning_rate: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.999),
        epoch_length: int | None = None,
        non_blocking: bool = True,
        amp: bool = False,
        channels_last: bool = False,
        distributed: bool = False,
        compile: bool = False,
        handlers: Sequence | None = None,
    ) -> None:
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
        self.stages: list[Stage] = method_stages(
            method, network.names, Lambdas.from_dict(dict(lambdas or {}))
        )
        self.stage_epochs = int(max_epochs)
        super().__init__(
            device=torch.device(device),
            max_epochs=self.stage_epochs * len(self.stages),
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            amp=amp,
            decollate=False,  # no postprocessing in the step: decollating costs time for nothing
        )
        self.method = method
        self.network = network
        self.learning_rate = float(learning_rate)
        self.betas = (float(betas[0]), float(betas[1]))
        self.channels_last = channels_last and torch.device(device).type == "cuda"
        self.amp_dtype = amp_dtype(torch.device(device))
        network.to(self.state.device)
        if self.channels_last:
            network.to(memory_format=torch.channels_last)
        self.generators: nn.Module = network.generators
        self.critics: nn.Module = network.critics
        if distributed:
            ids = [self.state.device] if self.state.device.type == "cuda" else None
            # Terms switched off (basic, IODA stages) leave modules unused in the forward.
            self.generators = nn.parallel.DistributedDataParallel(
                network.generators, device_ids=ids, find_unused_parameters=True
            )
            self.critics = nn.parallel.DistributedDataParallel(network.critics, device_ids=ids)
        if compile:
            self.generators = torch.compile(self.generators)  # type: ignore[assignment]
        self.stage_index = 0
        self.stage_start_epoch = 0
        self.stage_controller: Any = None  # set by StagedEarlyStopping when attached
        self._begin_stage(0)
        self.add_event_handler(Events.EPOCH_STARTED, self._reset_epoch_losses)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._publish_epoch_losses)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._stage_budget)
        if handlers:
            for h in handlers:
                h.attach(self)

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
        self.plan = Plan.for_terms(self.stage.weights, self.network.names)
        params = [p for p in self.network.generators.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.learning_rate, betas=self.betas)
        self.critic_optimizer = (
            torch.optim.Adam(self.network.critics.parameters(), lr=self.learning_rate, betas=self.betas)
            if self.stage.adversarial
            else None
        )

    def next_stage(self, engine: Engine | None = None) -> bool:
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

    def compute(
        self, batch: Batch, with_critic: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Forward + masked terms of the current stage: (unweighted terms, critic loss or None)."""
        with self._autocast():
            out = self.generators(batch.inputs, self.plan)
            critic_loss = None
            if with_critic and self.critic_optimizer is not None:
                critic_loss = self.network.critic_loss(self.critics, out, batch, self.stage.weights)
            terms = self.network.generator_terms(out, batch, self.stage.weights, self.network.critics)
        return terms, critic_loss

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        batch = self.network.make_batch(self._to_device(batchdata))
        weights = self.stage.weights
        critics = self.network.critics
        with self._autocast():
            out = self.generators(batch.inputs, self.plan)  # the one forward of the step
        critic_loss = None
        if self.critic_optimizer is not None:
            # Critic update on detached codes: no second forward through the generators.
            with self._autocast():
                critic_loss = self.network.critic_loss(self.critics, out, batch, weights)
            self.critic_optimizer.zero_grad(set_to_none=True)
            self._backward_step(critic_loss, self.critic_optimizer)
            critics.requires_grad_(False)  # the generator step must not accumulate critic grads
        with self._autocast():
            terms = self.network.generator_terms(out, batch, weights, critics)
            loss = torch.stack([weights[k] * v for k, v in terms.items()]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        self._backward_step(loss, self.optimizer)
        critics.requires_grad_(True)
        if self.scaler is not None:
            self.scaler.update()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        output = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        if critic_loss is not None:
            output["critic"] = critic_loss.detach()
        self._accumulate(output)
        return output

    def _backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
        else:
            loss.backward()
            optimizer.step()

    def run(self) -> None:  # type: ignore[override]
        """Train; a loss scaler exists only for fp16 (bf16 and fp32 need none).

        MONAI's ``Trainer.run`` would build a CUDA-only ``torch.cuda.amp.GradScaler``.
        """
        self.scaler = _scaler_for(self)
        Workflow.run(self)

    # --- epoch losses: summed on the device, read once per epoch (no per-step host sync) ----------
    def _reset_epoch_losses(self, engine: Engine) -> None:
        self._loss_sums: dict[str, torch.Tensor] = {}
        self._loss_steps = 0

    def _accumulate(self, output: dict[str, torch.Tensor]) -> None:
        for k, v in output.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0) + v.float()
        self._loss_steps += 1

    def _publish_epoch_losses(self, engine: Engine) -> None:
        n = max(self._loss_steps, 1)
        self.state.metrics.update({f"train_{k}": float(v) / n for k, v in self._loss_sums.items()})
        self.state.metrics["stage"] = self.stage_index

    @torch.no_grad()
    def stage_loss(self, loader: Iterable) -> float:
        """Mean weighted loss of the current stage's terms over a (validation) loader.

        IODA's pre-training stages stop early on this, as they have no translation to score.
        """
        total, n = 0.0, 0
        for batchdata in loader:
            batch = self.network.make_batch(self._to_device(batchdata))
            terms, _ = self.compute(batch, with_critic=False)
            total += float(
                sum(self.stage.weights[k] * v for k, v in terms.items() if not k.startswith("adv_"))
            )
            n += 1
        return total / max(n, 1)


def _scaler_for(trainer: SemiSupervisedTrainer) -> torch.amp.GradScaler | None:
    if trainer.amp and trainer.amp_dtype == torch.float16:
        return torch.amp.GradScaler(trainer.state.device.type)
    return None
