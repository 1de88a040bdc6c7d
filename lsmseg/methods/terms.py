"""Methods as data: loss terms as values, which are on, with which weights, in which stages.

Basic, SOP, IODA, LSM, Pix2Pix and CycleGAN share networks and loss terms (STYLE.md 3); a method
is a list of stages, each a mapping from :class:`Term` to weight plus the training step that reads
them (``lsmseg.methods.steps``). Terms for domains a, b:

- ``Term("rec", a)`` (auto-encoding), ``Term("sup", a, b)`` (supervised translation),
  ``Term("lat", a, b)`` (latent distance between h_ab(l_a) and l_b on paired rows),
  ``Term("adv", b)`` (latent adversarial on domain b's latent space, unpaired rows): the latent
  step (LSM and its presets).
- ``Term("gan", b)`` (image-space adversarial term on translations into b) and ``Term("cyc", a)``
  (cycle a -> b -> a back to the original values): the Pix2Pix and CycleGAN steps.
- ``Term("con", b)`` (Mean Teacher consistency of the predictions of b, rows with the source):
  the Mean Teacher step (``lsmseg.methods.meanteacher``); the U-Net baselines train their own
  network, ``SegmentationUNet`` (``lsmseg.methods.unet``).

A term is a value, never a string taken apart: a domain may be called ``t2w``. Its ``name``
(``sup_image2label``) only labels logs and metrics (``train_<name>``). The first two domains
are the main translation x -> y.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

from lsmseg.errors import check_choice

TermKind = Literal["rec", "sup", "lat", "adv", "gan", "cyc", "con"]
PAIR_KINDS: tuple[str, ...] = ("sup", "lat")  # terms of a translation a -> b
DOMAIN_KINDS: tuple[str, ...] = ("rec", "adv", "gan", "cyc", "con")  # terms of one domain
ADVERSARIAL_KINDS: tuple[str, ...] = ("adv", "gan")  # terms that read a critic
AdversarialLoss = Literal["confusion", "bce", "minimax"]
ADVERSARIAL_LOSSES: tuple[str, ...] = ("confusion", "bce", "minimax")
AdversarialRows = Literal["unpaired", "all"]
ADVERSARIAL_ROWS: tuple[str, ...] = ("unpaired", "all")
StepKind = Literal["latent", "pix2pix", "cyclegan", "unet", "meanteacher"]
STEPS: tuple[str, ...] = ("latent", "pix2pix", "cyclegan", "unet", "meanteacher")
METHODS: tuple[str, ...] = (
    "basic",
    "sop",
    "ioda",
    "lsm",
    "pix2pix",
    "cyclegan",
    "lsmABCD (ablation, e.g. lsm1010)",
    "unet",
    "meanteacher",
)
_ABLATION = re.compile(r"^lsm([01]{4})$")


@dataclass(frozen=True)
class Term:
    """One loss term: its kind and the domain(s) it reads.

    Attributes:
        kind: ``rec``, ``sup``, ``lat``, ``adv``, ``gan`` or ``cyc`` (module docstring).
        a: the domain of a one-domain term, the source of a translation term.
        b: the target of a translation term (``sup``, ``lat``); None for one-domain terms.
    """

    kind: TermKind
    a: str
    b: str | None = None

    def __post_init__(self) -> None:
        if self.kind in PAIR_KINDS:
            if self.b is None or self.b == self.a:
                raise ValueError(f"term {self.kind} needs two different domains, got {self.a!r}, {self.b!r}")
        elif self.kind in DOMAIN_KINDS:
            if self.b is not None:
                raise ValueError(f"term {self.kind} reads one domain, got {self.a!r} and {self.b!r}")
        else:
            valid = ", ".join(PAIR_KINDS + DOMAIN_KINDS)
            raise ValueError(f"unknown loss term kind {self.kind!r}; valid: {valid}")

    @property
    def name(self) -> str:
        """Label for logs and metrics: ``sup_image2label``, ``rec_label`` (never parsed back)."""
        return f"{self.kind}_{self.a}" if self.b is None else f"{self.kind}_{self.a}2{self.b}"

    @property
    def adversarial(self) -> bool:
        """Whether the term reads a critic."""
        return self.kind in ADVERSARIAL_KINDS

    def bind(self, roles: Mapping[str, str]) -> Term:
        """The term with role names (``x``, ``y``) replaced by domain names."""
        return Term(self.kind, roles[self.a], None if self.b is None else roles[self.b])


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
    # Mean Teacher consistency at the end of its ramp-up, on the per-element MSE of softmax
    # outputs. Tarvainen & Valpola weigh it 10-100x their classification loss, SSL4MIS (the
    # common medical-segmentation code) ~0.2x; 1x ``sup`` lies between them (tune it).
    con: float = 10.0

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
    """One training stage: term -> weight, and the step that trains them.

    IODA has three stages; the others one. ``step`` names the method family whose training
    step reads the terms: ``latent`` (LSM and its presets), ``pix2pix`` or ``cyclegan``.
    """

    name: str
    weights: dict[Term, float]
    step: StepKind = "latent"

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ValueError(f"unknown training step {self.step!r}; valid: {', '.join(STEPS)}")

    @property
    def adversarial(self) -> bool:
        """Whether a critic is trained in this stage (a weighted term reads one)."""
        return any(t.adversarial and w > 0 for t, w in self.weights.items())

    def trains(self, a: str, b: str) -> bool:
        """Whether this stage trains the translation a -> b, so validation scores it by its metric.

        True with a supervised term ``sup a -> b`` or an image-space GAN on b (CycleGAN has no
        supervised term); false for IODA's auto-encoder pre-training.
        """
        return Term("sup", a, b) in self.weights or Term("gan", b) in self.weights


@dataclass(frozen=True)
class Preset:
    """One stage of a named method over the roles ``x`` (source) and ``y`` (target).

    ``weights`` maps each term to the :class:`Lambdas` field that weighs it, or to a fixed weight.
    """

    name: str
    weights: Mapping[Term, str | float]
    step: StepKind = "latent"

    def stage(self, x: str, y: str, lambdas: Lambdas) -> Stage:
        """The stage on domains x, y, terms of zero weight left out."""
        weights = {
            t.bind({"x": x, "y": y}): getattr(lambdas, w) if isinstance(w, str) else float(w)
            for t, w in self.weights.items()
        }
        return Stage(self.name, _positive(weights), self.step)


_SUP = Term("sup", "x", "y")
# The methods other than LSM, as data. LSM and its ablations span every domain: lsm_terms.
PRESETS: dict[str, tuple[Preset, ...]] = {
    "basic": (Preset("train", {_SUP: "sup"}),),
    # Belharbi et al. 2015: supervised translation plus both reconstructions.
    "sop": (Preset("train", {_SUP: "sup", Term("rec", "x"): "rec", Term("rec", "y"): "rec"}),),
    # Lerouge et al. 2015: pre-train the X and Y auto-encoders, then fine-tune x -> y.
    "ioda": (
        Preset("pretrain_x", {Term("rec", "x"): 1.0}),
        Preset("pretrain_y", {Term("rec", "y"): 1.0}),
        Preset("finetune", {_SUP: "sup"}),
    ),
    # Isola et al. 2017: supervised x -> y plus a conditional image-space GAN, paired rows.
    "pix2pix": (Preset("train", {_SUP: "sup", Term("gan", "y"): "gan"}, step="pix2pix"),),
    # Zhu et al. 2017: two image-space GANs and two cycle terms, unpaired.
    "cyclegan": (
        Preset(
            "train",
            {
                Term("gan", "x"): "gan",
                Term("gan", "y"): "gan",
                Term("cyc", "x"): "cyc",
                Term("cyc", "y"): "cyc",
            },
            step="cyclegan",
        ),
    ),
    # Ronneberger et al. 2015 as MONAI builds it: supervised x -> y on paired rows, nothing else.
    "unet": (Preset("train", {_SUP: "sup"}, step="unet"),),
    # Tarvainen & Valpola 2017: the U-Net as student, an EMA teacher, consistency on rows with x.
    "meanteacher": (Preset("train", {_SUP: "sup", Term("con", "y"): "con"}, step="meanteacher"),),
}


def _pairs(domains: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in domains for b in domains if a != b]


def _positive(weights: dict[Term, float]) -> dict[Term, float]:
    # A zero weight switches a term off (as in the ablation), so no critic trains for nothing.
    return {k: w for k, w in weights.items() if w > 0}


def lsm_terms(domains: Sequence[str], switches: Switches, lambdas: Lambdas) -> dict[Term, float]:
    """Term weights of LSM with the given switches over N >= 2 domains."""
    x, y = domains[0], domains[1]
    weights = {Term("sup", x, y): lambdas.sup}
    for a, b in _pairs(domains):
        if switches.reverse and (a, b) != (x, y):
            weights[Term("sup", a, b)] = lambdas.reverse
        if switches.lat:
            weights[Term("lat", a, b)] = lambdas.lat
    for d in domains:
        if switches.adv:
            weights[Term("adv", d)] = lambdas.adv
        if switches.rec:
            weights[Term("rec", d)] = lambdas.rec
    return _positive(weights)


def method_stages(method: str, domains: Sequence[str], lambdas: Lambdas | None = None) -> list[Stage]:
    """The stages of a named method.

    Args:
        method: ``basic`` (LSM 0000), ``sop``, ``ioda``, ``lsm`` (LSM 1111), ``lsmABCD`` for an
            ablation (:class:`Switches`), ``pix2pix``, ``cyclegan``, ``unet`` or ``meanteacher``
            (see :data:`PRESETS`; the last two train a ``SegmentationUNet``, not LSM's networks).
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
    if method in PRESETS:
        return [p.stage(domains[0], domains[1], lam) for p in PRESETS[method]]
    if method == "lsm":
        return [Stage("train", lsm_terms(domains, Switches(), lam))]
    match = _ABLATION.match(method)
    if match:
        bits = [c == "1" for c in match.group(1)]
        return [Stage("train", lsm_terms(domains, Switches(*bits), lam))]
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def check_adversarial(kind: str) -> AdversarialLoss:
    """Validate the latent adversarial loss name."""
    return check_choice("adversarial loss", kind, ADVERSARIAL_LOSSES)  # type: ignore[return-value]
