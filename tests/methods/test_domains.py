"""Networks over named domains: LSM and the U-Net baselines answer source / target alike."""

from __future__ import annotations

import pytest

from lsmseg.methods import DomainNetwork, MeanTeacherUNet, SegmentationUNet
from lsmseg.methods.domains import Domain
from tests.helpers.methods import tiny_lsm

IMAGE, LABEL = Domain("image", "image", 1), Domain("label", "mask", 3)


@pytest.mark.parametrize(
    ("build", "prefixes"),
    [
        (lambda: tiny_lsm([IMAGE, LABEL, Domain("other", "image", 2)]), {"generators", "critics"}),
        (lambda: SegmentationUNet([IMAGE, LABEL], ngf=4), {"unet"}),
        (lambda: MeanTeacherUNet([IMAGE, LABEL], ngf=4), {"unet", "teacher"}),
    ],
)
def test_source_and_target_are_the_first_two_domains_and_add_no_state(build, prefixes: set[str]) -> None:
    network = build()
    assert isinstance(network, DomainNetwork)
    assert (network.source, network.target) == (IMAGE, LABEL)
    # the base holds no parameters: saved models keep their keys
    assert {k.split(".")[0] for k in network.state_dict()} == prefixes
