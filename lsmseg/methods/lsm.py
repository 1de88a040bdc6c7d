"""Latent Space Mapping (Mayet et al., IJCNN 2023) for N >= 2 domains.

One auto-encoder (E_d, D_d) per domain, one link network h_ab per ordered pair of domains, one
latent critic per domain. Translation a -> b is D_b(h_ab(E_a(v_a))). The loss terms and their
row masks are those of ``lsm_method.md``; which terms are on is decided by a method's stage
(``lsmseg.methods.terms``) and the losses are computed by the latent step
(``lsmseg.methods.steps.LatentStep``), so basic, SOP, IODA and LSM are the same module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, replace

import torch
from torch import nn

from lsmseg.errors import check_choice
from lsmseg.methods.domains import Domain, DomainNetwork, MaskLoss
from lsmseg.methods.terms import ADVERSARIAL_ROWS, AdversarialLoss, AdversarialRows, Term, check_adversarial
from lsmseg.networks import LinkNetwork, PatchDiscriminator, ResnetDecoder


def _link(a: str, b: str) -> str:
    return f"{a}2{b}"


# A set of batch rows by presence: (domains the rows have, domains they lack), e.g.
# ((x, y), ()) the paired rows, ((x,), (y,)) the x-only rows of a two-domain batch.
RowSet = tuple[tuple[str, ...], tuple[str, ...]]
Read = tuple[str, RowSet]  # an output (``l_x``, ``h_x2y`` ...) read on a row set


def _pair(a: str, b: str) -> RowSet:
    return ((a, b), ())


def adversarial_rows(o: str, a: str, which: AdversarialRows = "unpaired") -> tuple[RowSet, RowSet]:
    """(fake rows, real rows) of critic a judging h_oa(l_o) against l_a.

    ``unpaired`` (the paper's text): fakes on rows with o but not a, reals on rows with a but
    not o - the term is 0 at p = 100 %. ``all`` (the reference code): fakes on every row with o,
    reals on every row with a, so paired rows are judged too and the term works at p = 100 %.
    """
    if which == "all":
        return ((o,), ()), ((a,), ())
    return ((o,), (a,)), ((a,), (o,))


def _reads(term: Term, domains: Sequence[str], adv_rows: AdversarialRows = "unpaired") -> list[Read]:
    """The outputs a term reads and on which rows (lsm_method.md, "Losses")."""
    a, b = term.a, term.b
    if term.kind == "rec":
        return [(f"l_{a}", ((a,), ())), (f"rec_{a}", ((a,), ()))]
    if term.kind in ("sup", "lat") and b is not None:
        rows = _pair(a, b)
        last = f"tr_{_link(a, b)}" if term.kind == "sup" else f"l_{b}"
        return [(f"l_{a}", rows), (f"h_{_link(a, b)}", rows), (last, rows)]
    if term.kind == "adv":
        reads: list[Read] = []
        for o in domains:
            if o != a:  # fakes h_oa(l_o) and reals l_a on the rows of adversarial_rows
                fake, real = adversarial_rows(o, a, adv_rows)
                reads += [(f"l_{o}", fake), (f"h_{_link(o, a)}", fake), (f"l_{a}", real)]
        return reads
    raise ValueError(f"the latent step has no loss term {term.name!r}")


@dataclass(frozen=True)
class Plan:
    """What one training forward must compute for a set of weighted terms, and on which rows."""

    encode: frozenset[str] = frozenset()
    links: frozenset[tuple[str, str]] = frozenset()
    reconstruct: frozenset[str] = frozenset()
    translate: frozenset[tuple[str, str]] = frozenset()
    reads: frozenset[Read] = frozenset()

    @classmethod
    def for_terms(
        cls, terms: Iterable[Term], domains: Sequence[str], adv_rows: AdversarialRows = "unpaired"
    ) -> Plan:
        """Derive the minimal set of encodings, links and decodings the terms read
        (``adv_rows``: the rows the latent critics judge, :func:`adversarial_rows`)."""
        enc: set[str] = set()
        links: set[tuple[str, str]] = set()
        rec: set[str] = set()
        tr: set[tuple[str, str]] = set()
        reads: set[Read] = set()
        for term in terms:
            reads.update(_reads(term, domains, adv_rows))
            if term.kind == "rec":
                enc.add(term.a)
                rec.add(term.a)
            elif term.kind in ("sup", "lat") and term.b is not None:
                a, b = term.a, term.b
                enc.update((a, b) if term.kind == "lat" else (a,))
                links.add((a, b))
                if term.kind == "sup":
                    tr.add((a, b))
            else:  # adv: every other domain mapped into the judged one
                enc.update(domains)
                links.update((a, term.a) for a in domains if a != term.a)
        return cls(frozenset(enc), frozenset(links), frozenset(rec), frozenset(tr), frozenset(reads))

    def parents(self) -> dict[str, str]:
        """Each output's input: ``l_d`` <- domain d's values, ``h_a2b`` <- ``l_a``,
        ``rec_d`` <- ``l_d``, ``tr_a2b`` <- ``h_a2b``; children listed before their parents."""
        out = {f"tr_{_link(a, b)}": f"h_{_link(a, b)}" for a, b in sorted(self.translate)}
        out |= {f"rec_{d}": f"l_{d}" for d in sorted(self.reconstruct)}
        out |= {f"h_{_link(a, b)}": f"l_{a}" for a, b in sorted(self.links)}
        return out | {f"l_{d}": d for d in sorted(self.encode)}

    def rows(self, present: Mapping[str, torch.Tensor]) -> Rows:
        """Which rows each output is computed on: those some term reads (host side, no sync).

        A batch has a few dozen rows: plain Python on the host's presence lists costs less
        than dispatching a tensor op per index, and the indices become one host tensor.

        Args:
            present: {domain: (B,) bool} on the CPU (from the batch's modes before the copy to
                the device).
        """
        has = {d: [bool(v) for v in p.tolist()] for d, p in present.items()}
        batch = len(next(iter(has.values())))
        index = {rs: _row_index(rs, has, batch) for rs in {rs for _, rs in self.reads}}
        need: dict[str, set[int]] = {}
        for name, rs in self.reads:
            need.setdefault(name, set()).update(index[rs])
        parents = self.parents()
        encoded = {f"l_{d}" for d in self.encode}  # parents of these are the batch's values
        for child, parent in parents.items():  # a child's rows are computed from its parent's
            if child not in encoded:
                need.setdefault(parent, set()).update(need[child])
        computed = {name: sorted(rows) for name, rows in need.items()}
        take = {}
        for child, parent in parents.items():
            rows_in = list(range(batch)) if child in encoded else computed[parent]
            take[child] = _positions(rows_in, computed[child])
        at = {(name, rs): _positions(computed[name], index[rs]) for name, rs in self.reads}
        return Rows.from_lists(
            {k: v for k, v in take.items() if v is not None},
            {k: v for k, v in at.items() if v is not None},
            index,
        )


def _row_index(rows: RowSet, has: Mapping[str, list[bool]], batch: int) -> list[int]:
    """Sorted indices of the rows that have every domain of ``rows[0]`` and none of ``rows[1]``."""
    wanted, lacked = rows
    return [i for i in range(batch) if all(has[d][i] for d in wanted) and not any(has[d][i] for d in lacked)]


def _positions(rows_in: list[int], rows: list[int]) -> list[int] | None:
    """Positions of the (sorted) global ``rows`` in a tensor computed on ``rows_in``; None when
    they are all of it, in order (nothing to select)."""
    if rows_in == rows:
        return None
    at = {r: i for i, r in enumerate(rows_in)}
    return [at[r] for r in rows]


@dataclass(frozen=True)
class Rows:
    """The rows of one batch each output is computed on, as index tensors (built on the host).

    Attributes:
        take: output -> positions in its parent's rows that it is computed on (absent: all).
        at: (output, row set) -> positions of the row set's rows in that output (absent: all).
        index: row set -> its global row indices (to gather the targets of a term).
        packed: (n,) int64, every index above in that order: each is a view of it.
    """

    take: dict[str, torch.Tensor]
    at: dict[Read, torch.Tensor]
    index: dict[RowSet, torch.Tensor]
    packed: torch.Tensor

    @classmethod
    def from_lists(
        cls, take: Mapping[str, list[int]], at: Mapping[Read, list[int]], index: Mapping[RowSet, list[int]]
    ) -> Rows:
        """Rows from index lists: every index a view of one int64 host tensor (one op to build)."""
        flat = [i for group in (take, at, index) for rows in group.values() for i in rows]
        return _unpack(torch.tensor(flat, dtype=torch.int64), take, at, index)

    def to(self, device: torch.device) -> Rows:
        """The same indices on ``device``: one host-to-device copy for all of them.

        On a GPU a step is bound by the host's work per op, so the indices travel packed in one
        (pinned, on CUDA) int64 tensor with one non-blocking copy (the host never waits), and
        each index is a view of the copy. On the CPU they are already where they are read.
        """
        if device.type == "cpu":
            return self
        # The caching host allocator keeps a pinned block until the copy out of it has run.
        host = self.packed.pin_memory() if device.type == "cuda" else self.packed
        return _unpack(host.to(device, non_blocking=True), self.take, self.at, self.index)

    def count(self, rows: RowSet) -> int:
        """How many rows a row set has (a host integer: no device sync)."""
        return int(self.index[rows].shape[0])

    def read(self, out: Mapping[str, torch.Tensor], name: str, rows: RowSet) -> torch.Tensor:
        """Output ``name`` on the rows of ``rows``: (n, ...) from the output's computed rows."""
        pos = self.at.get((name, rows))
        return out[name] if pos is None else out[name][pos]

    def gather(self, values: torch.Tensor, rows: RowSet) -> torch.Tensor:
        """Batch values (B, ...) on the rows of ``rows``: (n, ...)."""
        return values[self.index[rows]]


def _unpack(
    packed: torch.Tensor, take: Mapping[str, Sized], at: Mapping[Read, Sized], index: Mapping[RowSet, Sized]
) -> Rows:
    """Rows whose indices are consecutive views of ``packed`` (n,), sized and keyed as ``take``,
    ``at`` and ``index`` in that order."""
    sizes = [len(v) for group in (take, at, index) for v in group.values()]
    views = iter(packed.split(sizes))
    return Rows(
        {k: next(views) for k in take}, {k: next(views) for k in at}, {k: next(views) for k in index}, packed
    )


class Generators(nn.Module):
    """All encoders, decoders and link networks; ``forward`` runs one training plan.

    Kept apart from the critics so each group can be wrapped in its own
    DistributedDataParallel (the critic and the generator are updated by separate backwards).
    """

    def __init__(
        self,
        domains: Sequence[Domain],
        ngf: int,
        n_blocks: int,
        n_down: int,
        link_blocks: int,
        image_size: int,
        nhwc_head: bool = False,
    ) -> None:
        super().__init__()
        latent_size = image_size // 2**n_down
        self.encoders = nn.ModuleDict(
            {d.name: d.make_encoder(ngf, n_blocks, n_down, latent_size) for d in domains}
        )
        self.decoders = nn.ModuleDict(
            {d.name: d.make_decoder(ngf, n_blocks, n_down, latent_size) for d in domains}
        )
        for decoder in self.decoders.values():
            if isinstance(decoder, ResnetDecoder):
                decoder.nhwc_head = nhwc_head
        latent_channels = ngf * 2**n_down
        pairs = [(a.name, b.name) for a in domains for b in domains if a.name != b.name]
        if len({_link(a, b) for a, b in pairs}) != len(pairs):
            # The state dict names a link "<a>2<b>": names such as "a2" and "2b" would collide.
            raise ValueError(f"domain names {[d.name for d in domains]} give two links the same name")
        self.links = nn.ModuleDict({_link(a, b): LinkNetwork(latent_channels, link_blocks) for a, b in pairs})

    def forward(
        self, inputs: dict[str, torch.Tensor], plan: Plan, take: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the plan on encoder inputs {domain: (B, ...)}.

        ``take`` (:attr:`Rows.take`) computes each output only on the rows some term reads:
        output -> positions in its parent's rows; without it (or for an output it leaves out)
        every row of the parent. InstanceNorm normalises each row alone, so a row's outputs do
        not depend on which other rows are computed.

        Returns:
            ``l_<d>``: latent (n, C_l, h, w); ``h_<a>2<b>``: mapped latent h_ab(l_a);
            ``rec_<d>``: reconstruction logits; ``tr_<a>2<b>``: translation logits; n = B
            without ``take``, else the output's rows.
        """
        take = take or {}

        def rows(name: str, values: torch.Tensor) -> torch.Tensor:
            # Indexing (not index_select) keeps NHWC tensors NHWC (``channels_last``).
            return values[take[name]] if name in take else values

        out: dict[str, torch.Tensor] = {}
        for d in sorted(plan.encode):
            out[f"l_{d}"] = self.encoders[d](rows(f"l_{d}", inputs[d]))
        for a, b in sorted(plan.links):
            name = f"h_{_link(a, b)}"
            out[name] = self.links[_link(a, b)](rows(name, out[f"l_{a}"]))
        for d in sorted(plan.reconstruct):
            out[f"rec_{d}"] = self.decoders[d](rows(f"rec_{d}", out[f"l_{d}"]))
        for a, b in sorted(plan.translate):
            name = f"tr_{_link(a, b)}"
            out[name] = self.decoders[b](rows(name, out[f"h_{_link(a, b)}"]))
        return out

    def translate(self, values: torch.Tensor, a: Domain, b: Domain) -> torch.Tensor:
        """Logits of D_b(h_ab(E_a(v_a))) for values (B, ...) of domain a."""
        return self.decoders[b.name](
            self.links[_link(a.name, b.name)](self.encoders[a.name](a.to_input(values)))
        )


class LatentCritics(nn.Module):
    """One PatchGAN critic per domain on its latent map; ``forward`` scores codes per domain."""

    def __init__(self, domains: Sequence[Domain], latent_channels: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        self.critics = nn.ModuleDict(
            {d.name: PatchDiscriminator(latent_channels, ndf, n_layers) for d in domains}
        )

    def forward(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{domain: codes (B, C_l, h, w)} -> {domain: patch logits (B, 1, h', w')}."""
        return {d: self.critics[d](z) for d, z in codes.items()}


class LatentSpaceMapping(DomainNetwork):
    """N-domain LSM; ``forward(x)`` is the main translation x -> y (logits), as bundles expect.

    Args:
        domains: the domains, main translation first: (x, y, ...).
        ngf: generator width (64 in the paper).
        n_blocks: residual blocks in each encoder and decoder (3 + 3 = resnet_6blocks).
        n_down: stride-2 steps of the encoders (latent = image / 2**n_down).
        link_blocks: residual blocks of each link network (1 in the reference).
        ndf: latent critic width (64 in the reference).
        critic_layers: PatchGAN layers of the latent critics; None picks the most that leave a
            >= 2x2 logit map (3 on the paper's 32x32 latent, 2 on a 16x16 latent).
        image_size: spatial size of image domains (sets the latent size of vector domains).
        adversarial: generator side of the latent adversarial term (the critics always learn
            real 1 / fake 0): ``confusion`` (the paper: both codes pushed to a critic output of
            0.5), ``bce`` (non-saturating GAN, BCE(D(fake), 1)) or ``minimax`` (the reference
            code's default: minimise -BCE(D(fake), 0), the saturating GAN form).
        adversarial_rows: the rows the latent critics judge, ``unpaired`` (the paper's text) or
            ``all`` (the reference code; active at p = 100 %), see :func:`adversarial_rows`.
        sup_loss: the mask domains' output loss (supervised translation and mask
            reconstruction), ``ce`` on logits or ``reference`` (:class:`Domain` ``mask_loss``).
        nhwc_head: run the decoders' 7x7 output convolutions in NHWC (``ResnetDecoder``; same
            weights, a CPU speed option).
    """

    def __init__(
        self,
        domains: Sequence[Domain],
        ngf: int = 64,
        n_blocks: int = 3,
        n_down: int = 2,
        link_blocks: int = 1,
        ndf: int = 64,
        critic_layers: int | None = None,
        image_size: int = 128,
        adversarial: AdversarialLoss = "confusion",
        adversarial_rows: AdversarialRows = "unpaired",
        sup_loss: MaskLoss | None = None,
        nhwc_head: bool = False,
    ) -> None:
        super().__init__()
        if len(domains) < 2:
            raise ValueError("LatentSpaceMapping needs at least two domains")
        if sup_loss is not None:
            domains = [replace(d, mask_loss=sup_loss) if d.kind == "mask" else d for d in domains]
        self.domains = {d.name: d for d in domains}
        self.names = [d.name for d in domains]
        self.adversarial = check_adversarial(adversarial)
        self.adversarial_rows: AdversarialRows = check_choice(  # type: ignore[assignment]
            "adversarial rows", adversarial_rows, ADVERSARIAL_ROWS
        )
        self.generators = Generators(domains, ngf, n_blocks, n_down, link_blocks, image_size, nhwc_head)
        latent_size = image_size // 2**n_down
        if critic_layers is None:
            critic_layers = max(1, math.floor(math.log2(latent_size / 3)))
        self.critics = LatentCritics(domains, ngf * 2**n_down, ndf, critic_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Main translation: x (B, ...) -> logits of y (B, C, H, W) (or (B, 2K) for landmarks)."""
        return self.generators.translate(x, self.source, self.target)
