"""Mean Teacher (Tarvainen & Valpola 2017, "Mean teachers are better role models") on the U-Net.

The student is the supervised baseline's U-Net (:class:`~lsmseg.methods.unet.SegmentationUNet`);
the teacher is a copy whose weights are an exponential moving average (EMA) of the student's,
never trained by a gradient. Each step:

    student = U(x + n_s),  teacher = U_EMA(x + n_t),  n_s, n_t ~ N(0, noise_std^2) independent
    L = lambda_sup L_sup(student, y)            on the paired rows (the mask loss of every method)
      + lambda_con r(t) MSE(softmax(student), softmax(teacher))   on every row with an image
    teacher <- a teacher + (1 - a) student,  a = min(ema_decay, 1 - 1 / (step + 1))

- The consistency reads every row with an image: the x-only rows and the paired rows' images
  (the paper's choice: labelled inputs are unlabelled inputs too); y-only rows have no image.
  MSE is the mean over classes and pixels of each row; the teacher's side is detached.
- r(t) = exp(-5 (1 - t / T)^2) for t < T, else 1 (Laine & Aila 2017, used by Tarvainen &
  Valpola): t the epochs trained so far (fractional: iterations / iterations per epoch), T =
  ``rampup_epochs``. The ramp scales the logged term: ``train_con_<y>`` is r(t) x MSE.
- ``step`` counts iterations from 1: the EMA starts fast and settles at ``ema_decay`` after
  1 / (1 - ema_decay) - 1 steps, as in the authors' code, so an early teacher is not mostly its
  random initialisation.
- The teacher is what the network's ``forward`` returns: it is validated, saved as the best
  ``model.pt`` and used by evaluation and inference (the paper reports the teacher as the better
  model). ``model.pt`` holds both (``unet.*`` the student, ``teacher.*``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from torch import nn

from lsmseg.losses import mse_per_row, rows_mean
from lsmseg.methods.domains import Domain
from lsmseg.methods.steps import Batch, Outputs, register_step
from lsmseg.methods.terms import Term
from lsmseg.methods.unet import SegmentationUNet, UNetStep, row_index

EMA_DECAY = 0.99  # Tarvainen & Valpola: 0.99 during ramp-up (0.999 after, on long runs)
NOISE_STD = 0.1  # Gaussian input noise on images in [0, 1] (the HU window): 10 % of the range
RAMPUP_EPOCHS = 5.0  # the authors' CIFAR-10 code ramps the consistency weight up over 5 epochs


def sigmoid_rampup(epochs: float, length: float) -> float:
    """exp(-5 (1 - t / T)^2) for t = ``epochs`` < T = ``length``, else 1 (1 when T <= 0)."""
    if length <= 0 or epochs >= length:
        return 1.0
    phase = 1.0 - max(epochs, 0.0) / length
    return math.exp(-5.0 * phase * phase)


class MeanTeacherUNet(SegmentationUNet):
    """The student U-Net (``unet``, trained) and its EMA teacher (``teacher``, what ``forward`` runs).

    Args:
        domains, ngf: as :class:`SegmentationUNet` (the teacher doubles the parameters stored).
        ema_decay: EMA decay a of the teacher (0.99).
        noise_std: standard deviation of the Gaussian noise added to student and teacher inputs,
            in image units ([0, 1]); 0 turns it off.
        rampup_epochs: epochs over which the consistency weight ramps up (sigmoid-shaped).

    The three training settings are recorded in ``model.json`` with the network, so the record
    says how its teacher was made.
    """

    def __init__(
        self,
        domains: Sequence[Mapping[str, Any] | Domain],
        ngf: int = 64,
        ema_decay: float = EMA_DECAY,
        noise_std: float = NOISE_STD,
        rampup_epochs: float = RAMPUP_EPOCHS,
    ) -> None:
        super().__init__(domains, ngf)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if noise_std < 0 or rampup_epochs < 0:
            raise ValueError(f"noise_std and rampup_epochs must be >= 0, got {noise_std}, {rampup_epochs}")
        self.ema_decay, self.noise_std, self.rampup_epochs = (
            float(ema_decay),
            float(noise_std),
            float(rampup_epochs),
        )
        self.teacher = copy.deepcopy(self.unet).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's mask logits (B, C_y, H, W) for images (B, C_x, H, W) in [0, 1]."""
        return self.teacher(self.source.to_input(x))

    @torch.no_grad()
    def update_teacher(self, step: int) -> float:
        """teacher <- a teacher + (1 - a) student after optimiser step ``step`` (from 1); returns a."""
        decay = min(self.ema_decay, 1.0 - 1.0 / (step + 1))
        for t, s in zip(self.teacher.parameters(), self.unet.parameters(), strict=True):
            t.lerp_(s.detach(), 1.0 - decay)  # t + (1 - a)(s - t) = a t + (1 - a) s
        for tb, sb in zip(self.teacher.buffers(), self.unet.buffers(), strict=True):
            tb.copy_(sb)  # normalisation statistics, if any, follow the student
        return decay


class MeanTeacherStep(UNetStep):
    """Student and teacher forwards on the rows with an image; ``sup`` and ``con`` terms.

    Terms: ``sup x -> y`` (paired rows, the student's noisy outputs) and ``con y`` (every row
    with an image, ramped by :func:`sigmoid_rampup`). :meth:`attach` registers the ramp's clock
    (iteration start) and the EMA update (after the optimiser step, ``MODEL_COMPLETED``).
    """

    def __init__(self, network: MeanTeacherUNet) -> None:
        if not isinstance(network, MeanTeacherUNet):
            raise ValueError(
                f"method meanteacher trains a MeanTeacherUNet, got {type(network).__name__}: build the "
                "network with lsmseg.methods.registry.network_for('meanteacher', ...)"
            )
        super().__init__(network)
        self.teacher_network = network
        self.con = Term("con", self.y.name)
        self.ramp = 1.0  # r(t); set at each iteration start once attached

    def attach(self, engine: Any) -> None:
        """Ramp clock at ITERATION_STARTED, EMA update at MODEL_COMPLETED (after the step)."""
        engine.add_event_handler(Events.ITERATION_STARTED, self._set_ramp)
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self._update_teacher)

    def _set_ramp(self, engine: Any) -> None:
        length = engine.state.epoch_length or 1
        self.ramp = sigmoid_rampup((engine.state.iteration - 1) / length, self.teacher_network.rampup_epochs)

    def _update_teacher(self, engine: Any) -> None:
        self.teacher_network.update_teacher(engine.state.iteration)

    def _indices(self, has_x: torch.Tensor, has_y: torch.Tensor) -> dict[str, torch.Tensor]:
        source = has_x.nonzero().reshape(-1)
        paired_in_source = has_y[source].nonzero().reshape(-1)
        return {"paired": source[paired_in_source], "source": source, "paired_in_source": paired_in_source}

    def _noisy(self, images: torch.Tensor) -> torch.Tensor:
        std = self.teacher_network.noise_std
        return images + std * torch.randn_like(images) if std > 0 else images

    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """``student`` and ``teacher`` logits (n_x, C, H, W) on the rows with an image, each on
        its own noisy copy of the images; the teacher's without gradient."""
        images = batch.inputs[self.x.name][row_index(batch, "source")]
        student = generators(self._noisy(images))
        with torch.no_grad():
            teacher = self.teacher_network.teacher(self._noisy(images))
        return {"student": student, "teacher": teacher}

    def generator_terms(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """Unweighted ``sup x -> y`` (paired rows) and ramped ``con y`` (rows with an image)."""
        losses: dict[Term, torch.Tensor] = {}
        for term in terms:
            if term == self.sup:
                losses[term] = self.supervised(out["student"][row_index(batch, "paired_in_source")], batch)
            elif term == self.con:
                losses[term] = self.ramp * self.consistency(out["student"], out["teacher"])
            else:
                raise ValueError(f"Mean Teacher has no loss term {term.name!r}")
        return losses

    def consistency(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Mean over rows of the per-row MSE between student and teacher softmax outputs (scalar);
        logits (n, C, H, W), the teacher's detached."""
        p_student = torch.softmax(student.float(), dim=1)
        p_teacher = torch.softmax(teacher.detach().float(), dim=1)
        return rows_mean(mse_per_row(p_student, p_teacher), int(student.shape[0]))


register_step("meanteacher", MeanTeacherStep)
