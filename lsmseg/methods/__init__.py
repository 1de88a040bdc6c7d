"""LSM and the baselines that share its networks."""

from lsmseg.methods.config import METHODS, Lambdas, Stage, Switches, method_stages
from lsmseg.methods.domains import Domain
from lsmseg.methods.lsm import Batch, Generators, LatentCritics, LatentSpaceMapping, Plan

__all__ = [
    "METHODS",
    "Batch",
    "Domain",
    "Generators",
    "Lambdas",
    "LatentCritics",
    "LatentSpaceMapping",
    "Plan",
    "Stage",
    "Switches",
    "method_stages",
]
