"""A domain of the translation problem: how its values enter an encoder and how they are scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lsmseg.losses import (
    class_weights,
    cross_entropy_per_row,
    l1_per_row,
    mse_per_row,
    reference_cross_entropy_per_row,
)
from lsmseg.networks import ResnetDecoder, ResnetEncoder

DomainKind = Literal["image", "mask", "landmarks"]
DOMAIN_KINDS: tuple[str, ...] = ("image", "mask", "landmarks")
MaskLoss = Literal["ce", "reference"]
MASK_LOSSES: tuple[str, ...] = ("ce", "reference")


@dataclass(frozen=True)
class Domain:
    """One domain (CT image, tissue mask, landmarks ...).

    Attributes:
        name: key of the domain's values in a batch (e.g. ``"image"``, ``"label"``).
        kind: ``image`` - (B, C, H, W) float in [0, 1], decoded with a sigmoid;
            ``mask`` - (B, 1, H, W) integer class map, one-hot into the encoder, softmax out;
            ``landmarks`` - (B, 2K) float in [0, 1], decoded with a sigmoid.
        channels: image channels, number of classes (mask), or number of values (landmarks).
        image_loss: ``l1`` (reference) or ``mse`` (paper) for image outputs.
        class_weighting: weight mask classes by inverse pixel frequency over the batch (reference).
        mask_loss: ``ce`` - cross-entropy on logits, class weights normalised to mean 1;
            ``reference`` - the reference code's form, kept to reproduce it
            (:func:`~lsmseg.losses.masked.reference_cross_entropy_per_row`: a double softmax with
            unnormalised weights, ~10x weaker against the other terms).
    """

    name: str
    kind: DomainKind
    channels: int
    image_loss: Literal["l1", "mse"] = "l1"
    class_weighting: bool = True
    mask_loss: MaskLoss = "ce"

    def __post_init__(self) -> None:
        if self.kind not in DOMAIN_KINDS:
            raise ValueError(f"unknown domain kind {self.kind!r}; valid: {', '.join(DOMAIN_KINDS)}")
        if self.mask_loss not in MASK_LOSSES:
            raise ValueError(f"unknown mask loss {self.mask_loss!r}; valid: {', '.join(MASK_LOSSES)}")

    def to_input(self, values: torch.Tensor) -> torch.Tensor:
        """Values as stored in a batch -> encoder input (one-hot (B, C, H, W) float for masks)."""
        if self.kind == "mask":
            labels = values.reshape(values.shape[0], *values.shape[-2:]).long()
            return F.one_hot(labels, self.channels).permute(0, 3, 1, 2).float()
        return values.float()

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Decoder logits -> values (probabilities for masks)."""
        return torch.softmax(logits, dim=1) if self.kind == "mask" else torch.sigmoid(logits)

    def loss_per_row(
        self, logits: torch.Tensor, target: torch.Tensor, rows: torch.Tensor, batch_size: int | None = None
    ) -> torch.Tensor:
        """Output loss of decoder ``logits`` against ``target`` for each row: -> (B,).

        ``rows`` (B,) marks the rows whose target is real; it only matters for the class weights,
        which must not see hidden targets. ``batch_size`` is the training batch the rows come
        from (the ``reference`` mask loss scales its weights by it); default B.
        """
        if self.kind == "mask":
            labels = target.reshape(target.shape[0], *target.shape[-2:]).long()
            if self.mask_loss == "reference":
                return reference_cross_entropy_per_row(logits, labels, rows, batch_size)
            weight = class_weights(labels, rows, self.channels) if self.class_weighting else None
            return cross_entropy_per_row(logits, labels, weight)
        pred = torch.sigmoid(logits.float())
        if self.kind == "image" and self.image_loss == "l1":
            return l1_per_row(pred, target.float())
        return mse_per_row(pred, target.float())

    def make_encoder(self, ngf: int, n_blocks: int, n_down: int, latent_size: int) -> nn.Module:
        """Encoder of this domain: values -> (B, ngf * 2**n_down, latent_size, latent_size)."""
        if self.kind == "landmarks":
            from lsmseg.networks.landmarks import LandmarkEncoder

            return LandmarkEncoder(self.channels // 2, ngf * 2**n_down, latent_size)
        return ResnetEncoder(self.channels, ngf, n_blocks, n_down)

    def make_decoder(self, ngf: int, n_blocks: int, n_down: int, latent_size: int) -> nn.Module:
        """Decoder of this domain: latent map -> logits shaped like the domain's values."""
        if self.kind == "landmarks":
            from lsmseg.networks.landmarks import LandmarkDecoder

            return LandmarkDecoder(self.channels // 2, ngf * 2**n_down, latent_size)
        return ResnetDecoder(self.channels, ngf, n_blocks, n_down)


class DomainNetwork(nn.Module):
    """A network over named domains, the main translation first: what the trainer, its handlers
    and inference read of LSM's networks and of the U-Net baselines alike.

    A subclass sets ``domains`` ({name: :class:`Domain`}) and ``names`` (their order, x first,
    then y, ...) in its ``__init__``; neither holds parameters, so state dict keys are the
    subclass's own.
    """

    domains: dict[str, Domain]
    names: list[str]

    @property
    def source(self) -> Domain:
        """The domain the main translation starts from (x, first in ``names``)."""
        return self.domains[self.names[0]]

    @property
    def target(self) -> Domain:
        """The domain the main translation ends in (y, second in ``names``)."""
        return self.domains[self.names[1]]
