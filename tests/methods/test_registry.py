"""Which methods a bundle's domains can train: the U-Net methods need (image, mask)."""

from __future__ import annotations

import pytest

from lsmseg.methods.domains import Domain
from lsmseg.methods.registry import check_method_domains

FACES = [
    {"name": "image", "kind": "image", "channels": 3},
    {"name": "landmarks", "kind": "landmarks", "channels": 136},
]
SLICES = [Domain("image", "image", 1), Domain("label", "mask", 4)]


@pytest.mark.parametrize("method", ["unet", "meanteacher"])
def test_the_unet_methods_are_refused_on_landmarks_naming_the_methods_that_fit(method: str) -> None:
    with pytest.raises(ValueError, match=r"domains are \(image, landmarks\)") as err:
        check_method_domains(method, FACES)
    fitting = str(err.value).split("methods for it: ")[1]
    assert fitting == "basic, sop, ioda, lsm, pix2pix, cyclegan, lsmABCD (ablation, e.g. lsm1010)"


@pytest.mark.parametrize("method", ["unet", "meanteacher", "lsm", "pix2pix"])
def test_image_and_mask_domains_train_every_method(method: str) -> None:
    check_method_domains(method, SLICES)  # no error


@pytest.mark.parametrize("method", ["lsm", "basic", "cyclegan", "lsm1010"])
def test_landmarks_train_the_other_methods(method: str) -> None:
    check_method_domains(method, FACES)  # no error
