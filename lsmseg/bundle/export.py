"""``ckpt_export`` for every bundle: the network exports by tracing at its recorded input size.

MONAI's ``python -m monai.bundle ckpt_export network_def ...`` scripts the network with
``torch.jit.script``. An LSM network cannot be scripted (its forward plan is a Python
dataclass, its domains Python objects), but its inference forward - image (B, C, S, S) in,
logits out - has no data-dependent control flow, so a trace is exact. ``torch.jit.script``
asks a module to ``__prepare_scriptable__`` first; :func:`exportable` makes that a trace at the
model record's input size, with the weights ``ckpt_export`` has just loaded. The documented
command therefore works as written, without ``--use_trace`` or ``--input_shape``.
"""

from __future__ import annotations

import torch
from torch import nn

from lsmseg.engines.record import ModelRecord


def input_shape(record: ModelRecord) -> list[int]:
    """(1, C, S, S) of the network's source domain: channels from the record, S its image size."""
    source = record.network["args"]["domains"][0]
    size = int(record.preprocessing["image_size"])
    return [1, int(source["channels"]), size, size]


class _Traced(nn.Module):
    """A scriptable shell around a trace (``torch.jit.script`` compiles its module's forward)."""

    def __init__(self, traced: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.traced = traced

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.traced(x)


def exportable(network: nn.Module, record: ModelRecord) -> nn.Module:
    """``network`` itself, which ``torch.jit.script`` turns into a trace at the record's input size."""
    shape = input_shape(record)

    def trace() -> nn.Module:
        device = next(network.parameters()).device
        traced = torch.jit.trace(network.eval(), torch.rand(shape, device=device))
        return _Traced(traced)  # type: ignore[arg-type]

    network.__prepare_scriptable__ = trace  # type: ignore[assignment]
    return network
