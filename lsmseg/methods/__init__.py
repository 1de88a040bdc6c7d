"""LSM and the baselines that share its networks: terms and stages as data, one step interface."""

from lsmseg.methods.domains import Domain
from lsmseg.methods.gan import CycleGenerators, ImageCritics
from lsmseg.methods.lsm import Generators, LatentCritics, LatentSpaceMapping, Plan
from lsmseg.methods.steps import Batch, CycleGANStep, LatentStep, Pix2PixStep, Step, make_step
from lsmseg.methods.terms import METHODS, Lambdas, Stage, Switches, Term, method_stages

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
    "LatentStep",
    "Pix2PixStep",
    "Plan",
    "Stage",
    "Step",
    "Switches",
    "Term",
    "make_step",
    "method_stages",
]
