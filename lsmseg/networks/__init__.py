"""Networks shared by LSM and its baselines."""

from lsmseg.networks.resnet import (
    LinkNetwork,
    PatchDiscriminator,
    ResBlock,
    ResnetDecoder,
    ResnetEncoder,
    init_normal,
)

__all__ = ["LinkNetwork", "PatchDiscriminator", "ResBlock", "ResnetDecoder", "ResnetEncoder", "init_normal"]
