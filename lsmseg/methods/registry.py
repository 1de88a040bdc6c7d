"""Networks buildable from plain data: a registry of factory names and their JSON arguments.

A trained bundle records which network it trained (``name`` + ``args``, see
:mod:`lsmseg.engines.record`); inference, evaluation and ``lsmseg segment`` rebuild that exact
network from the record without evaluating any config expression.

Example::

    net = build_network("LatentSpaceMapping", {
        "domains": [{"name": "image", "kind": "image", "channels": 1},
                    {"name": "label", "kind": "mask", "channels": 4}],
        "ngf": 8, "ndf": 8, "image_size": 64})
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from lsmseg.methods.domains import Domain
from lsmseg.methods.lsm import LatentSpaceMapping


def _latent_space_mapping(domains: list[Mapping[str, Any] | Domain], **kwargs: Any) -> nn.Module:
    built = [d if isinstance(d, Domain) else Domain(**dict(d)) for d in domains]
    return LatentSpaceMapping(built, **kwargs)


# name -> (factory, the signature whose parameters are the valid argument names)
NETWORKS: dict[str, tuple[Callable[..., nn.Module], Callable[..., Any]]] = {
    "LatentSpaceMapping": (_latent_space_mapping, LatentSpaceMapping.__init__),
}


def register_network(
    name: str, factory: Callable[..., nn.Module], signature: Callable[..., Any] | None = None
) -> None:
    """Make ``factory(**args)`` buildable from a record under ``name``."""
    NETWORKS[name] = (factory, signature or factory)


def valid_args(name: str) -> list[str]:
    """Argument names the network ``name`` accepts."""
    _, signature = NETWORKS[name]
    return [p for p in inspect.signature(signature).parameters if p != "self"]


def build_network(name: str, args: Mapping[str, Any]) -> nn.Module:
    """Build the registered network ``name`` from JSON-able ``args``.

    Raises:
        ValueError: unknown network name or argument, naming the valid ones.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid: {', '.join(sorted(NETWORKS))}")
    allowed = valid_args(name)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValueError(
            f"network {name}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(allowed)}"
        )
    factory, _ = NETWORKS[name]
    return factory(**dict(args))
