"""LSM, the baselines that share its networks and the U-Net baselines: terms and stages as data, one step interface."""

from lsmseg.methods.domains import Domain, DomainNetwork
from lsmseg.methods.gan import CycleGenerators, ImageCritics
from lsmseg.methods.lsm import Generators, LatentCritics, LatentSpaceMapping, Plan
from lsmseg.methods.meanteacher import MeanTeacherStep, MeanTeacherUNet
from lsmseg.methods.steps import Batch, CycleGANStep, LatentStep, Pix2PixStep, Step, make_step
from lsmseg.methods.terms import METHODS, Lambdas, Stage, Switches, Term, method_stages
from lsmseg.methods.unet import SegmentationUNet, UNetStep

__all__ = [
    "METHODS",
    "Batch",
    "CycleGANStep",
    "CycleGenerators",
    "Domain",
    "DomainNetwork",
    "Generators",
    "ImageCritics",
    "Lambdas",
    "LatentCritics",
    "LatentSpaceMapping",
    "LatentStep",
    "MeanTeacherStep",
    "MeanTeacherUNet",
    "Pix2PixStep",
    "Plan",
    "SegmentationUNet",
    "Stage",
    "Step",
    "Switches",
    "Term",
    "UNetStep",
    "make_step",
    "method_stages",
]
