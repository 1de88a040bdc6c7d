"""The training steps: the rows each term reads, and that hidden views never reach a loss."""

import pytest
import torch
from torch.utils.data import DataLoader

from lsmseg.engines import SemiSupervisedTrainer
from lsmseg.experiments.reference import full_batch, masked_critic_loss, masked_terms
from lsmseg.keys import Mode
from lsmseg.methods import CycleGANStep, Domain, LatentStep, Pix2PixStep, Plan, Step, make_step, method_stages
from tests.helpers.methods import MIXED, losses_and_grads, mixed_batch, tiny_lsm

STEPS = {"lsm": LatentStep, "pix2pix": Pix2PixStep, "cyclegan": CycleGANStep}


def _step(
    method: str,
    adversarial: str = "confusion",
    domains: list[Domain] | None = None,
    size: int = 32,
    **options: str,
) -> Step:
    model = tiny_lsm(domains, size, adversarial, **options)
    torch.manual_seed(1)
    step = make_step(method_stages(method, model.names)[0].step, model, ndf=4)
    step.begin(method_stages(method, model.names)[0])
    return step


def test_each_family_has_its_step() -> None:
    assert {m: type(_step(m)) for m in STEPS} == STEPS
    step = _step("lsm")
    assert step.critics is step.network.critics and step.generators is step.network.generators


@pytest.mark.parametrize(
    ("method", "adversarial"), [("lsm", "confusion"), ("lsm", "bce"), ("pix2pix", ""), ("cyclegan", "")]
)
def test_hidden_views_change_no_loss_and_no_gradient(method: str, adversarial: str) -> None:
    step = _step(method, adversarial or "confusion")
    raw = mixed_batch()
    losses, grads = losses_and_grads(step, method, raw)
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(grads) > 0 and any(n.startswith("generators.") for n in grads)
    assert any(n.startswith(("critic.", "critics.")) for n in grads)

    changed = {k: v.clone() for k, v in raw.items()}
    changed["label"][2:4] = torch.randint(0, 3, (2, 1, 32, 32))  # hidden y of the x-only rows
    changed["image"][4:6] = torch.rand(2, 1, 32, 32) * 7  # hidden x of the y-only rows
    losses2, grads2 = losses_and_grads(step, method, changed)
    assert losses.keys() == losses2.keys() and grads.keys() == grads2.keys()
    for k in losses:
        assert torch.equal(losses[k], losses2[k]), k
    for n in grads:
        assert torch.equal(grads[n], grads2[n]), n


def test_visible_views_do_change_the_loss() -> None:
    """The counterpart: the test above would pass trivially if no view mattered."""
    step = _step("lsm")
    raw = mixed_batch()
    losses, _ = losses_and_grads(step, "lsm", raw)
    changed = {k: v.clone() for k, v in raw.items()}
    changed["label"][4] = 1 - changed["label"][4].clamp(max=1)  # a y-only row's real y
    losses2, _ = losses_and_grads(step, "lsm", changed)
    assert not torch.equal(losses["rec_label"], losses2["rec_label"])


def test_terms_without_rows_are_zero() -> None:
    step = _step("lsm")
    losses, _ = losses_and_grads(step, "lsm", mixed_batch([Mode.X_ONLY] * 6))
    assert float(losses["sup_image2label"]) == 0.0 and float(losses["lat_image2label"]) == 0.0
    assert float(losses["rec_image"]) > 0.0


def test_pix2pix_generator_is_the_main_translation() -> None:
    step = _step("pix2pix")
    batch = step.batch(mixed_batch())
    out = step.forward(step.generators, batch)
    with torch.no_grad():
        assert torch.allclose(out["tr_image2label"], step.network(batch.views["image"]))


def test_pix2pix_ignores_unpaired_rows_entirely() -> None:
    """Pix2Pix is supervised: even the visible x of x-only rows and y of y-only rows are unused."""
    step = _step("pix2pix")
    raw = mixed_batch()
    losses, grads = losses_and_grads(step, "pix2pix", raw)
    changed = {k: v.clone() for k, v in raw.items()}
    changed["image"][2:4] = torch.rand(2, 1, 32, 32)
    changed["label"][4:6] = torch.randint(0, 3, (2, 1, 32, 32))
    losses2, grads2 = losses_and_grads(step, "pix2pix", changed)
    assert all(torch.equal(losses[k], losses2[k]) for k in losses)
    assert all(torch.equal(grads[n], grads2[n]) for n in grads)
    changed["label"][0] = (changed["label"][0] + 1) % 3  # a paired row's y does matter
    losses3, _ = losses_and_grads(step, "pix2pix", changed)
    assert not torch.equal(losses["sup_image2label"], losses3["sup_image2label"])
    assert not torch.equal(losses["critic"], losses3["critic"])


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Equal up to float rounding: the same sums, taken over the rows in another order."""
    assert a.keys() == b.keys()
    va, vb = (torch.cat([d[k].reshape(-1) for k in sorted(d)]) for d in (a, b))
    # Relative to the whole vector: some gradients (a conv bias before InstanceNorm) are only noise.
    assert float((va - vb).norm()) <= 1e-4 * float(va.norm()), float((va - vb).norm() / va.norm())


def test_cyclegan_never_reads_the_pairing() -> None:
    """Shuffling which y goes with which x leaves every CycleGAN loss and gradient unchanged."""
    step = _step("cyclegan")
    raw = mixed_batch([Mode.PAIRED] * 4)
    losses, grads = losses_and_grads(step, "cyclegan", raw)
    shuffled = dict(raw, label=raw["label"][torch.tensor([2, 0, 3, 1])])
    losses2, grads2 = losses_and_grads(step, "cyclegan", shuffled)
    _assert_close(losses, losses2)
    _assert_close(grads, grads2)
    other, _ = losses_and_grads(step, "cyclegan", mixed_batch([Mode.PAIRED] * 4, seed=2))
    assert not torch.equal(losses2["cyc_label"], other["cyc_label"])

    # The same x and y as unpaired rows (x-only rows, then y-only rows) give the same values.
    split = {
        "image": torch.cat([raw["image"], torch.zeros_like(raw["image"])]),
        "label": torch.cat([torch.zeros_like(raw["label"]), raw["label"]]),
        "mode": torch.tensor([int(Mode.X_ONLY)] * 4 + [int(Mode.Y_ONLY)] * 4),
    }
    losses3, grads3 = losses_and_grads(step, "cyclegan", split)
    _assert_close(losses, losses3)
    _assert_close(grads, grads3)


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_landmark_domain_trains_with_image_space_critics(method: str) -> None:
    step = _step(method, domains=[Domain("image", "image", 3), Domain("label", "landmarks", 136)], size=64)
    raw = {
        "image": torch.rand(4, 3, 64, 64),
        "label": torch.rand(4, 136),
        "mode": torch.tensor([Mode.PAIRED, Mode.PAIRED, Mode.X_ONLY, Mode.Y_ONLY]),
    }
    losses, _ = losses_and_grads(step, method, raw)
    assert all(torch.isfinite(v) for v in losses.values())
    in_channels = {d: c.model[0].in_channels for d, c in step.critics.critics.items()}
    assert in_channels == ({"label": 139} if method == "pix2pix" else {"image": 3, "label": 136})


def test_presence_of_n_domains_comes_from_the_present_column() -> None:
    step = _step(
        "lsm", domains=[Domain("ct", "image", 1), Domain("mask", "mask", 2), Domain("mr", "image", 1)]
    )
    raw = {
        "ct": torch.rand(3, 1, 32, 32),
        "mask": torch.randint(0, 2, (3, 1, 32, 32)),
        "mr": torch.rand(3, 1, 32, 32),
        "present": torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.bool),
    }
    batch = step.batch(raw)
    assert batch.present["mr"].tolist() == [True, False, True]
    assert batch.inputs["mask"].shape == (3, 2, 32, 32)  # one-hot into the encoder
    losses, _ = losses_and_grads(step, "lsm", raw)
    assert "sup_mr2mask" in losses and all(torch.isfinite(v) for v in losses.values())


def test_a_domain_named_t2w_trains() -> None:
    """Two LSM steps on an MRI-style domain name: a "2" in a name is not a separator."""
    net = tiny_lsm([Domain("t2w", "image", 1), Domain("label", "mask", 3)])
    rows = [
        {"t2w": b["image"][i], "label": b["label"][i], "mode": b["mode"][i]}
        for b in [mixed_batch()]
        for i in range(6)
    ]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = SemiSupervisedTrainer("cpu", 1, DataLoader(rows, batch_size=3), net, method="lsm")
    trainer.run()
    assert trainer.state.iteration == 2
    assert {"train_sup_t2w2label", "train_adv_t2w", "train_lat_label2t2w"} <= set(trainer.state.metrics)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generators.links.t2w2label.") for k in changed)
    assert any(k.startswith("critics.critics.t2w.") for k in changed)


def _masked_losses_and_grads(
    step: Step, raw: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The masked definition: every output on every row, each term masked per row."""
    model, terms = step.network, method_stages("lsm", step.network.names)[0].weights
    model.zero_grad(set_to_none=True)
    batch = full_batch(model, raw)
    out = model.generators(batch.inputs, Plan.for_terms(terms, model.names, model.adversarial_rows))
    losses = {t.name: v for t, v in masked_terms(model, model.critics, out, batch, terms).items()}
    losses["critic"] = masked_critic_loss(model, model.critics, out, batch, terms)
    torch.stack(list(losses.values())).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize(
    "modes",
    [
        MIXED,
        [Mode.PAIRED] * 4,  # no unpaired rows: the critics judge nothing
        [Mode.X_ONLY, Mode.Y_ONLY, Mode.X_ONLY, Mode.Y_ONLY],  # no pairs: no sup, no lat
        [Mode.X_ONLY] * 3,  # no y at all: rec_label, sup, lat and the real codes of y have no rows
        [Mode.Y_ONLY, Mode.PAIRED, Mode.Y_ONLY, Mode.X_ONLY, Mode.PAIRED],  # rows interleaved
    ],
    ids=["mixed", "all_paired", "all_unpaired", "x_only", "interleaved"],
)
@pytest.mark.parametrize(
    "adversarial, options",
    [
        ("confusion", {}),
        ("bce", {}),
        ("minimax", {"adversarial_rows": "all", "sup_loss": "reference"}),  # the reference code's
    ],
    ids=["confusion", "bce", "reference"],
)
def test_row_only_step_equals_the_masked_terms(modes: list[Mode], adversarial: str, options: dict) -> None:
    """Computing only the rows each term reads changes no loss and no gradient (float rounding)."""
    step = _step("lsm", adversarial, **options)
    raw = mixed_batch(modes)
    losses, grads = losses_and_grads(step, "lsm", raw)
    masked, masked_grads = _masked_losses_and_grads(step, raw)
    assert losses.keys() == masked.keys() and grads.keys() == masked_grads.keys()
    for k in losses:
        assert torch.allclose(losses[k], masked[k], rtol=1e-6, atol=1e-6), (k, losses[k], masked[k])
    # float32 sums over other batch sizes round differently: about 5e-7 of the gradient's norm
    # (the biases before an InstanceNorm have gradients of pure rounding noise, ~1e-7).
    g, m = (torch.cat([d[n].reshape(-1) for n in sorted(d)]) for d in (grads, masked_grads))
    assert float((g - m).norm()) <= 2e-6 * float(m.norm())
    assert all(torch.allclose(grads[n], masked_grads[n], rtol=0, atol=1e-5) for n in grads)


def test_row_only_forward_computes_only_the_rows_terms_read() -> None:
    """Mixed batch of 6 (2 paired, 2 x-only, 2 y-only): E_x on the 4 rows with x, the translation
    on the 2 paired rows, the mapped codes h_xy on the 4 rows with x (pairs for L_lat, x-only
    rows as the critic's fakes)."""
    step = _step("lsm")
    out = step.forward(step.generators, step.batch(mixed_batch()))
    rows = {k: v.shape[0] for k, v in out.items()}
    assert rows == {
        "l_image": 4,
        "l_label": 4,
        "h_image2label": 4,
        "h_label2image": 4,
        "rec_image": 4,
        "rec_label": 4,
        "tr_image2label": 2,
        "tr_label2image": 2,
    }
    basic = _step("basic")
    out = basic.forward(basic.generators, basic.batch(mixed_batch()))
    assert {k: v.shape[0] for k, v in out.items()} == {"l_image": 2, "h_image2label": 2, "tr_image2label": 2}


def test_a_critic_without_rows_still_steps_through_an_fp16_scaler() -> None:
    """All-paired batch: the critics run on empty batches, so every critic parameter gets a
    zero gradient and the loss scaler records its inf checks (it would refuse to step otherwise)."""
    step = _step("lsm")
    terms = method_stages("lsm", step.network.names)[0].weights
    batch = step.batch(mixed_batch([Mode.PAIRED] * 3))
    out = step.forward(step.generators, batch)
    loss = step.critic_loss(step.critics, out, batch, terms)
    optimizer = torch.optim.Adam(step.critics.parameters())
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert float(loss.detach()) == 0.0
    assert all(p.grad is not None and not p.grad.any() for p in step.critics.parameters())


def test_modes_read_from_the_host_batch() -> None:
    """With the host copy of the batch given, the row indices come from its modes."""
    step = _step("lsm")
    raw = mixed_batch()
    host = dict(raw)
    from_host, from_raw = step.batch(raw, host), step.batch(raw)
    assert from_host.rows is not None and from_raw.rows is not None
    assert from_host.rows.take.keys() == from_raw.rows.take.keys()
    assert all(torch.equal(from_host.rows.take[k], from_raw.rows.take[k]) for k in from_raw.rows.take)


@pytest.mark.parametrize("rows, active", [("unpaired", False), ("all", True)])
def test_all_rows_make_the_adversarial_term_work_at_p_1(rows: str, active: bool) -> None:
    """An all-paired batch (p = 100 %): the paper's unpaired rows leave the critics nothing to
    judge (terms exactly 0); the reference code's ``all`` judges the paired rows' codes."""
    step = _step("lsm", adversarial_rows=rows)
    losses, _ = losses_and_grads(step, "lsm", mixed_batch([Mode.PAIRED] * 4))
    for name in ("adv_image", "adv_label", "critic"):
        assert (float(losses[name]) != 0.0) is active, (name, losses[name])


def test_minimax_generator_term_is_minus_the_critics_fake_loss() -> None:
    """``minimax`` (the reference default): the generator minimises -BCE(D(h_ab(l_a)), 0) over
    the fake rows - the saturating GAN form - summed over the critics."""
    from lsmseg.losses import bce_per_row

    step = _step("lsm", "minimax", adversarial_rows="all")
    assert isinstance(step, LatentStep)
    terms = method_stages("lsm", step.network.names)[0].weights
    batch = step.batch(mixed_batch())
    out = step.forward(step.generators, batch)
    losses = step.generator_terms(step.critics, out, batch, terms)
    for term, value in losses.items():
        if term.kind == "adv":
            ((fake, _, n_fake, _),) = step._critic_scores(step.critics, term.a, out, batch, False)
            assert n_fake == 4  # every row with the other domain: 2 paired + 2 one-view rows
            assert torch.allclose(value, -bce_per_row(fake, 0.0).mean())
