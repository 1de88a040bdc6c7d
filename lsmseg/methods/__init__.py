"""LSM and the baselines that share its networks."""

from lsmseg.methods.config import METHODS, Lambdas, Stage, Switches, method_stages
from lsmseg.methods.domains import Domain
from lsmseg.methods.gan import CycleGANStep, CycleGenerators, ImageCritics, Pix2PixStep
from lsmseg.methods.lsm import Batch, Generators, LatentCritics, LatentSpaceMapping, Plan

__all__ = [
    "METHODS",
    "Batch",
    "CycleGANStep",
    "CycleGenerators",
    "Domain",
    "Generators",
    "ImageCritics",
    "Lambdas",
    "LatentCritics",
    "LatentSpaceMapping",
    "Pix2PixStep",
    "Plan",
    "Stage",
    "Switches",
    "method_stages",
]
