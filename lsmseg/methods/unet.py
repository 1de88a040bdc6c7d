"""The supervised baseline a clinical researcher would pick: a MONAI U-Net on the paired rows.

:class:`SegmentationUNet` is ``monai.networks.nets.UNet`` (Ronneberger et al. 2015, with MONAI's
residual units, Kerfoot et al. 2018) from image to mask logits; :class:`UNetStep` trains it on
the paired rows alone with the supervised output loss every other method uses for masks (the
mask domain's ``loss_per_row``: cross-entropy on logits with the class weights). Its width
follows ``ngf`` so that it has about the parameters of basic's translation path
E_x + h_xy + D_y at the same ``ngf`` (see :func:`unet_channels`).

The network is a :class:`~lsmseg.methods.domains.DomainNetwork` like LSM's (``names``,
``domains``, ``source``, ``target``, ``generators`` = what the optimiser trains) and
``forward(x)`` returns the main translation's logits (B, C, H, W) like
``LatentSpaceMapping.forward``, so validation, evaluation, inference and ``lsmseg segment``
use it unchanged. It is rebuilt from ``models/model.json`` by name (``SegmentationUNet``,
``lsmseg.methods.registry``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.networks.nets import UNet
from torch import nn

from lsmseg.losses import rows_mean
from lsmseg.methods.domains import Domain, DomainNetwork
from lsmseg.methods.steps import Batch, Outputs, Step, presence, register_step
from lsmseg.methods.terms import Term

# Width multiples of ngf per level (3 stride-2 steps: the bottom is at 1/8 of the image size)
# and residual units per level. With 3 units the U-Net has 1.05-1.06x the parameters of
# basic's E_x + h_xy + D_y at every ngf (1 image channel, 4 classes: ngf 8 150 k vs 143 k,
# ngf 16 598 k vs 567 k, ngf 64 9.54 M vs 9.01 M; 2 classes within 0.1 %); MONAI's tutorial shape
# (ngf x (1, 2, 4, 8, 16), 2 units) has 2.9x, 2 units on these levels 0.71x.
UNET_LEVELS: tuple[int, ...] = (1, 2, 4, 8)
UNET_RES_UNITS = 3


def unet_channels(ngf: int) -> tuple[int, ...]:
    """Feature channels of each U-Net level for generator width ``ngf``: ngf x (1, 2, 4, 8)."""
    return tuple(int(ngf) * m for m in UNET_LEVELS)


def _image_and_mask(domains: Sequence[Mapping[str, Any] | Domain]) -> tuple[Domain, Domain]:
    """The source (image) and target (mask) domain of a U-Net baseline."""
    built = [d if isinstance(d, Domain) else Domain(**dict(d)) for d in domains]
    if len(built) != 2 or built[0].kind != "image" or built[1].kind != "mask":
        kinds = [d.kind for d in built]
        raise ValueError(f"the U-Net baselines segment an image: domains must be (image, mask), got {kinds}")
    return built[0], built[1]


class SegmentationUNet(DomainNetwork):
    """MONAI 2-D U-Net from the image domain to the mask domain's logits.

    Args:
        domains: (image, mask) domains as LSM's record lists them (dicts or :class:`Domain`).
        ngf: width; the levels have ngf x (1, 2, 4, 8) channels (:func:`unet_channels`),
            3 residual units each, instance norm and PReLU (MONAI's defaults). Parameters for
            1 image channel and 4 classes: 150 k at ngf 8, 598 k at 16, 9.54 M at 64 (basic's
            E_x + h_xy + D_y: 143 k, 567 k, 9.01 M).
    """

    def __init__(self, domains: Sequence[Mapping[str, Any] | Domain], ngf: int = 64) -> None:
        super().__init__()
        source, target = _image_and_mask(domains)
        self.domains = {source.name: source, target.name: target}
        self.names = [source.name, target.name]
        self.unet = UNet(
            spatial_dims=2,
            in_channels=source.channels,
            out_channels=target.channels,
            channels=unet_channels(ngf),
            strides=(2,) * (len(UNET_LEVELS) - 1),
            num_res_units=UNET_RES_UNITS,
        )

    @property
    def generators(self) -> nn.Module:
        """The module the trainer's optimiser updates and its step runs: the U-Net."""
        return self.unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C_x, H, W) in [0, 1] -> mask logits (B, C_y, H, W); H, W multiples of 8."""
        return self.unet(self.source.to_input(x))


@dataclass
class RowBatch(Batch):
    """A batch with the rows the step computes on, as index tensors on the device:
    ``index["paired"]`` (rows with image and mask) and, for Mean Teacher, ``index["source"]``
    (rows with an image) and ``index["paired_in_source"]`` (the paired rows' positions in it)."""

    index: dict[str, torch.Tensor] = field(default_factory=dict)


def row_index(batch: Batch, name: str) -> torch.Tensor:
    """Index tensor ``name`` of a :class:`RowBatch`."""
    if not isinstance(batch, RowBatch):
        raise ValueError("a U-Net step batch needs its row indices: build it with the step's batch()")
    return batch.index[name]


class UNetStep(Step):
    """Supervised U-Net: the image through the U-Net on the paired rows, the mask loss on them.

    Only the paired rows are computed (their indices come from the host's modes, no device
    sync): x-only and y-only rows never reach the network, a loss or a gradient. Term:
    ``sup x -> y`` only; no critic (``critics`` is an empty module the trainer never updates).
    """

    betas = (0.9, 0.999)  # Adam's defaults, as LSM's reference

    def __init__(self, network: SegmentationUNet) -> None:
        if not isinstance(network, SegmentationUNet):
            raise ValueError(
                f"the U-Net methods train a SegmentationUNet, got {type(network).__name__}: build the "
                "network with lsmseg.methods.registry.network_for(method, ...)"
            )
        self.network = network  # type: ignore[assignment]  # not LSM's network: own step
        self.x, self.y = network.source, network.target
        self.generators = network.generators
        self.critics = nn.ModuleDict()
        self.sup = Term("sup", self.x.name, self.y.name)

    def _host_rows(
        self, raw: Mapping[str, torch.Tensor], host: Mapping[str, Any] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) bool rows with x and rows with y, from the host's modes when given."""
        present = presence(host if host is not None else raw, self.network.names)
        return present[self.x.name].cpu(), present[self.y.name].cpu()

    def _indices(self, has_x: torch.Tensor, has_y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"paired": (has_x & has_y).nonzero().reshape(-1)}

    def batch(self, raw: Mapping[str, torch.Tensor], host: Mapping[str, Any] | None = None) -> Batch:
        """Image input, the mask views and the row indices (the masks are never one-hot encoded)."""
        x, y = self.x.name, self.y.name
        device = raw[x].device
        index = {
            k: v.to(device, non_blocking=True) for k, v in self._indices(*self._host_rows(raw, host)).items()
        }
        views = {x: raw[x], y: raw[y]}
        return RowBatch(views, presence(raw, self.network.names), {x: self.x.to_input(raw[x])}, index=index)

    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """``logits``: the U-Net's mask logits (n_paired, C, H, W) on the paired rows."""
        return {"logits": generators(batch.inputs[self.x.name][row_index(batch, "paired")])}

    def critic_loss(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> torch.Tensor:
        """No critic: 0 (never called, the stage has no adversarial term)."""
        return torch.zeros((), device=batch.inputs[self.x.name].device)

    def supervised(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mask loss of paired-row ``logits`` (n_paired, C, H, W) against their masks (scalar)."""
        paired = row_index(batch, "paired")
        n = int(paired.shape[0])
        every = torch.ones(n, dtype=torch.bool, device=logits.device)  # all these rows have a mask
        return rows_mean(self.y.loss_per_row(logits, batch.views[self.y.name][paired], every), n)

    def generator_terms(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """Unweighted ``sup x -> y`` over the paired rows (0 in a batch without one)."""
        unknown = [t.name for t in terms if t != self.sup]
        if unknown:
            raise ValueError(f"the U-Net step has no loss term(s) {unknown}")
        return {self.sup: self.supervised(out["logits"], batch)}


register_step("unet", UNetStep)
