"""Methods as data: which loss terms are on, with which weights, in which stages.

Basic, SOP, IODA, LSM, Pix2Pix and CycleGAN share networks and loss terms (STYLE.md 3); a method
is a list of stages, each a mapping from concrete term names to weights plus the training step
that reads them. Term names for domains a, b:

- ``rec_a`` (auto-encoding), ``sup_a2b`` (supervised translation), ``lat_a2b`` (latent distance
  between h_ab(l_a) and l_b on paired rows), ``adv_b`` (latent adversarial on domain b's latent
  space, unpaired rows): the latent step (LSM and its presets).
- ``gan_b`` (image-space adversarial term on translations into domain b) and ``cyc_a`` (cycle
  a -> b -> a back to the original values): the Pix2Pix and CycleGAN steps
  (``lsmseg.methods.gan``).

The first two domains are the main translation x -> y.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Literal

ADVERSARIAL_LOSSES: tuple[str, ...] = ("confusion", "bce")
METHODS: tuple[str, ...] = (
    "basic",
    "sop",
    "ioda",
    "lsm",
    "pix2pix",
    "cyclegan",
    "lsmABCD (ablation, e.g. lsm1010)",
)
StepKind = Literal["latent", "pix2pix", "cyclegan"]
STEPS: tuple[str, ...] = ("latent", "pix2pix", "cyclegan")
ADVERSARIAL_TERMS: tuple[str, ...] = ("adv_", "gan_")  # terms that read a critic
_ABLATION = re.compile(r"^lsm([01]{4})$")


@dataclass
class Lambdas:
    """Loss weights (reference defaults; the paper tunes them in log space)."""

    rec: float = 1.0  # L_rec for every domain
    sup: float = 10.0  # L_sup of the main translation x -> y
    reverse: float = 10.0  # L_sup of the other translations (y -> x)
    lat: float = 1.0  # L_lat latent distance, paired rows
    adv: float = 1.0  # L_adv latent adversarial, unpaired rows
    gan: float = 1.0  # image-space GAN terms of Pix2Pix and CycleGAN (both references: 1)
    cyc: float = 10.0  # CycleGAN cycle consistency, each direction (Zhu et al. 2017: 10)

    @classmethod
    def from_dict(cls, values: dict[str, float] | None) -> Lambdas:
        """Build from a config mapping; unknown keys fail with the valid ones."""
        values = dict(values or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown lambda(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Switches:
    """The paper's ablation LSM abcd (appendix D): a = L_lat, b = L_adv, c = reverse L_sup, d = L_rec.

    LSM 0000 is the basic supervised translation; LSM 1111 uses every loss.
    """

    lat: bool = True
    adv: bool = True
    reverse: bool = True
    rec: bool = True

    @property
    def code(self) -> str:
        return "".join("1" if s else "0" for s in (self.lat, self.adv, self.reverse, self.rec))


@dataclass(frozen=True)
class Stage:
    """One training stage: term name -> weight, and the step that trains them.

    IODA has three stages; the others one. ``step`` names the method family whose training
    step reads the terms: ``latent`` (LSM and its presets), ``pix2pix`` or ``cyclegan``.
    """

    name: str
    weights: dict[str, float]
    step: StepKind = "latent"

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ValueError(f"unknown training step {self.step!r}; valid: {', '.join(STEPS)}")

    @property
    def adversarial(self) -> bool:
        """Whether a critic is trained in this stage (a weighted term reads one)."""
        return any(k.startswith(ADVERSARIAL_TERMS) and w > 0 for k, w in self.weights.items())

    def trains(self, a: str, b: str) -> bool:
        """Whether this stage trains the translation a -> b, so validation scores it by its metric.

        True with a supervised term (``sup_a2b``) or an image-space GAN on b (``gan_b``: CycleGAN
        has no supervised term); false for IODA's auto-encoder pre-training.
        """
        return f"sup_{a}2{b}" in self.weights or f"gan_{b}" in self.weights


def _pairs(domains: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in domains for b in domains if a != b]


def _positive(weights: dict[str, float]) -> dict[str, float]:
    # A zero weight switches a term off (as in the ablation), so no critic trains for nothing.
    return {k: w for k, w in weights.items() if w > 0}


def lsm_terms(domains: list[str], switches: Switches, lambdas: Lambdas) -> dict[str, float]:
    """Term weights of LSM with the given switches over N >= 2 domains."""
    x, y = domains[0], domains[1]
    weights = {f"sup_{x}2{y}": lambdas.sup}
    for a, b in _pairs(domains):
        if switches.reverse and (a, b) != (x, y):
            weights[f"sup_{a}2{b}"] = lambdas.reverse
        if switches.lat:
            weights[f"lat_{a}2{b}"] = lambdas.lat
    for d in domains:
        if switches.adv:
            weights[f"adv_{d}"] = lambdas.adv
        if switches.rec:
            weights[f"rec_{d}"] = lambdas.rec
    return _positive(weights)


def method_stages(method: str, domains: list[str], lambdas: Lambdas | None = None) -> list[Stage]:
    """The stages of a named method.

    Args:
        method: ``basic`` (LSM 0000), ``sop`` (Belharbi et al. 2015: supervised + reconstruction),
            ``ioda`` (Lerouge et al. 2015: pre-train the X and Y auto-encoders, then fine-tune
            x -> y), ``lsm`` (LSM 1111), ``lsmABCD`` for an ablation, ``pix2pix`` (Isola et al.
            2017: supervised x -> y plus a conditional image-space GAN, paired rows) or
            ``cyclegan`` (Zhu et al. 2017: two image-space GANs and two cycle terms, unpaired).
            Pix2Pix weighs its supervised term with ``lambdas.sup`` like every other method (the
            pix2pix reference weighs an L1 image loss by 100; for masks the term is the domain's
            cross-entropy, so the same ``sup`` keeps the comparison to the GAN term alone).
        domains: domain names, the main translation first (x, y, ...).
        lambdas: loss weights.

    Raises:
        ValueError: unknown method, with the valid names.
    """
    lam = lambdas or Lambdas()
    if len(domains) < 2:
        raise ValueError("LSM needs at least two domains")
    x, y = domains[0], domains[1]
    if method == "basic":
        return [Stage("train", {f"sup_{x}2{y}": lam.sup})]
    if method == "sop":
        return [Stage("train", {f"sup_{x}2{y}": lam.sup, f"rec_{x}": lam.rec, f"rec_{y}": lam.rec})]
    if method == "ioda":
        return [
            Stage("pretrain_x", {f"rec_{x}": 1.0}),
            Stage("pretrain_y", {f"rec_{y}": 1.0}),
            Stage("finetune", {f"sup_{x}2{y}": lam.sup}),
        ]
    if method == "lsm":
        return [Stage("train", lsm_terms(domains, Switches(), lam))]
    if method == "pix2pix":
        weights = {f"sup_{x}2{y}": lam.sup, f"gan_{y}": lam.gan}
        return [Stage("train", _positive(weights), step="pix2pix")]
    if method == "cyclegan":
        weights = {f"gan_{x}": lam.gan, f"gan_{y}": lam.gan, f"cyc_{x}": lam.cyc, f"cyc_{y}": lam.cyc}
        return [Stage("train", _positive(weights), step="cyclegan")]
    match = _ABLATION.match(method)
    if match:
        bits = [c == "1" for c in match.group(1)]
        return [Stage("train", lsm_terms(domains, Switches(*bits), lam))]
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def check_adversarial(kind: str) -> Literal["confusion", "bce"]:
    """Validate the latent adversarial loss name."""
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; valid: {', '.join(ADVERSARIAL_LOSSES)}")
    return kind  # type: ignore[return-value]
