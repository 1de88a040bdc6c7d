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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from lsmseg.methods.domains import Domain
from lsmseg.methods.lsm import LatentSpaceMapping
from lsmseg.methods.meanteacher import MeanTeacherUNet
from lsmseg.methods.terms import METHODS
from lsmseg.methods.unet import SegmentationUNet


def _latent_space_mapping(domains: list[Mapping[str, Any] | Domain], **kwargs: Any) -> nn.Module:
    built = [d if isinstance(d, Domain) else Domain(**dict(d)) for d in domains]
    return LatentSpaceMapping(built, **kwargs)


# name -> (factory, the signature whose parameters are the valid argument names)
NETWORKS: dict[str, tuple[Callable[..., nn.Module], Callable[..., Any]]] = {
    "LatentSpaceMapping": (_latent_space_mapping, LatentSpaceMapping.__init__),
    "SegmentationUNet": (SegmentationUNet, SegmentationUNet.__init__),
    "MeanTeacherUNet": (MeanTeacherUNet, MeanTeacherUNet.__init__),
}
# Methods that train a network of their own instead of LSM's: method -> network name.
METHOD_NETWORKS: dict[str, str] = {"unet": "SegmentationUNet", "meanteacher": "MeanTeacherUNet"}
# The domain kinds a U-Net method's network maps between: image in, mask logits out.
UNET_KINDS: tuple[str, ...] = ("image", "mask")


def check_method_domains(method: str, domains: Sequence[Mapping[str, Any] | Domain]) -> None:
    """Refuse a method that cannot train on a bundle's domains, before any network is built.

    ``unet`` and ``meanteacher`` (:data:`METHOD_NETWORKS`) segment an image: they need the
    domains (image, mask). A landmark bundle (image, landmarks) trains every other method.

    Raises:
        ValueError: naming the bundle's domain kinds and the methods that fit them.
    """
    kinds = tuple(d.kind if isinstance(d, Domain) else str(d["kind"]) for d in domains)
    if method in METHOD_NETWORKS and kinds != UNET_KINDS:
        fitting = ", ".join(m for m in METHODS if m not in METHOD_NETWORKS)
        raise ValueError(
            f"method {method} trains a U-Net that segments an image into a mask, but this bundle's "
            f"domains are ({', '.join(kinds)}); methods for it: {fitting}"
        )


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


def network_for(method: str, lsm_network: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    """The network record (``{"name", "args"}``) that ``method`` trains, from a bundle's LSM record.

    ``unet`` and ``meanteacher`` train a U-Net (:data:`METHOD_NETWORKS`) on the LSM record's
    ``domains`` at its ``ngf``; ``settings`` add arguments of that network (e.g.
    ``ema_decay=0.999``). Every other method trains LSM's networks: ``lsm_network`` unchanged.
    Bundles call it as ``network_for(@method, @lsm_network)``.
    """
    if method not in METHOD_NETWORKS:
        return {"name": str(lsm_network["name"]), "args": dict(lsm_network["args"])}
    name, lsm_args = METHOD_NETWORKS[method], lsm_network["args"]
    args: dict[str, Any] = {"domains": list(lsm_args["domains"]), "ngf": int(lsm_args.get("ngf", 64))}
    if name == "MeanTeacherUNet":  # every setting in the record: it says how the teacher was made
        defaults = inspect.signature(MeanTeacherUNet.__init__).parameters
        args |= {k: defaults[k].default for k in ("ema_decay", "noise_std", "rampup_epochs")}
    return {"name": name, "args": args | settings}
