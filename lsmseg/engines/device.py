"""Which torch device a run uses, from the name a user typed."""

from __future__ import annotations

import torch

from lsmseg.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU when PyTorch sees one, else the CPU; ``cpu``; ``cuda`` or
    ``cuda:N``.

    Raises:
        UsageError: an unknown name, or ``cuda`` without a visible GPU (saying what to do).
    """
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise UsageError(
                f"device {device}: PyTorch ({torch.__version__}, {build}) sees no CUDA GPU; "
                "use cpu (or auto), or run the Docker image with --gpus all"
            )
        return torch.device("cuda:0" if name == "cuda" else name)
    raise UsageError(f"unknown device {device!r}; valid: {', '.join(DEVICE_CHOICES)}")
