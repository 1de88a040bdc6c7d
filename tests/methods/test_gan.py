"""Pix2Pix and CycleGAN on LSM's generators: the rows they read, the terms they train."""

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader

from lsmseg.bundle import check_settings
from lsmseg.data.sit import generate_sit, make_rows
from lsmseg.data.split import row_sampler
from lsmseg.engines import SemiSupervisedTrainer, StagedEarlyStopping
from lsmseg.keys import Mode
from lsmseg.methods import (
    CycleGANStep,
    Domain,
    Lambdas,
    LatentSpaceMapping,
    Pix2PixStep,
    method_stages,
)
from lsmseg.methods.gan import as_planes, gan_per_row

D = ["image", "label"]
Step = Pix2PixStep | CycleGANStep


def _model(size: int = 32, domains: list[Domain] | None = None) -> LatentSpaceMapping:
    torch.manual_seed(0)
    domains = domains or [Domain("image", "image", 1), Domain("label", "mask", 3)]
    return LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=size)


def _step(method: str, model: LatentSpaceMapping) -> Step:
    torch.manual_seed(1)
    return Pix2PixStep(model, ndf=4) if method == "pix2pix" else CycleGANStep(model, ndf=4)


def _batch(modes: list[Mode], seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(modes)
    return {
        "image": torch.rand(n, 1, 32, 32, generator=g),
        "label": torch.randint(0, 3, (n, 1, 32, 32), generator=g),
        "mode": torch.tensor([int(m) for m in modes]),
    }


MIXED = [Mode.PAIRED, Mode.PAIRED, Mode.X_ONLY, Mode.X_ONLY, Mode.Y_ONLY, Mode.Y_ONLY]


def _losses_and_grads(
    model: LatentSpaceMapping, step: Step, raw: dict[str, torch.Tensor]
) -> tuple[dict, dict]:
    """Every generator term and the critic loss of one step, and the gradients of their sum."""
    method = "pix2pix" if isinstance(step, Pix2PixStep) else "cyclegan"
    terms = method_stages(method, model.names)[0].weights
    model.zero_grad(set_to_none=True)
    step.critics.zero_grad(set_to_none=True)
    batch = model.make_batch(raw)
    out = step.forward(step.generators, batch)
    losses = step.generator_terms(step.critics, out, batch, terms)
    losses["critic"] = step.critic_loss(step.critics, out, batch, terms)
    torch.stack(list(losses.values())).sum().backward()
    params = [*model.named_parameters(), *(("critic." + n, p) for n, p in step.critics.named_parameters())]
    grads = {n: p.grad.clone() for n, p in params if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def test_presets_name_the_terms_and_the_step() -> None:
    pix = method_stages("pix2pix", D)
    assert len(pix) == 1 and pix[0].step == "pix2pix"
    assert pix[0].weights == {"sup_image2label": 10.0, "gan_label": 1.0}
    cyc = method_stages("cyclegan", D, Lambdas(cyc=5.0))[0]
    assert cyc.step == "cyclegan"
    assert cyc.weights == {"gan_image": 1.0, "gan_label": 1.0, "cyc_image": 5.0, "cyc_label": 5.0}
    assert pix[0].adversarial and cyc.adversarial and not method_stages("basic", D)[0].adversarial
    # Validation scores x -> y by its metric for every method that trains it, CycleGAN included.
    assert cyc.trains("image", "label") and pix[0].trains("image", "label")
    assert not method_stages("ioda", D)[0].trains("image", "label")
    assert method_stages("pix2pix", D, Lambdas(gan=0.0))[0].weights == {"sup_image2label": 10.0}


def test_other_presets_are_unchanged() -> None:
    assert method_stages("basic", D)[0].weights == {"sup_image2label": 10.0}
    assert all(
        s.step == "latent" for m in ("basic", "sop", "ioda", "lsm", "lsm1010") for s in method_stages(m, D)
    )
    assert len(method_stages("lsm", D)[0].weights) == 8


def test_unknown_method_lists_the_baselines() -> None:
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm, pix2pix, cyclegan, lsmABCD"):
        method_stages("gan", D)
    with pytest.raises(ValueError, match="valid: rec, sup, reverse, lat, adv, gan, cyc"):
        Lambdas.from_dict({"l1": 100.0})
    with pytest.raises(ValueError, match="valid: bce, lsgan"):
        Pix2PixStep(_model(), gan_loss="wgan")  # type: ignore[arg-type]


def test_gan_losses_follow_their_references() -> None:
    logits = torch.tensor([[[[0.0, 2.0]]]])
    # LSGAN: squared distance of raw logits to the target (Mao et al. 2017).
    assert torch.allclose(gan_per_row(logits, 1.0, "lsgan"), torch.tensor([(1.0 + 1.0) / 2]))
    # Vanilla: BCE on logits; at logit 0 it is log 2 whatever the target.
    assert torch.allclose(gan_per_row(logits[..., :1], 0.0, "bce"), torch.tensor([0.6931]), atol=1e-4)


def test_landmark_vectors_are_repeated_over_the_image_plane() -> None:
    x = torch.rand(2, 3, 8, 8)
    y = torch.rand(2, 136)
    planes = as_planes([x, y], (8, 8))
    assert planes.shape == (2, 139, 8, 8)
    assert torch.equal(planes[:, 3:, 5, 2], y) and torch.equal(planes[:, :3], x)


def test_pix2pix_generator_is_the_main_translation() -> None:
    model = _model()
    step = _step("pix2pix", model)
    batch = model.make_batch(_batch(MIXED))
    out = step.forward(step.generators, batch)
    with torch.no_grad():
        assert torch.allclose(out["tr_image2label"], model(batch.views["image"]))


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_hidden_views_change_no_loss_and_no_gradient(method: str) -> None:
    model = _model()
    step = _step(method, model)
    raw = _batch(MIXED)
    losses, grads = _losses_and_grads(model, step, raw)
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(n.startswith("critic.") for n in grads) and any(n.startswith("generators.") for n in grads)

    changed = {k: v.clone() for k, v in raw.items()}
    changed["label"][2:4] = torch.randint(0, 3, (2, 1, 32, 32))  # hidden y of the x-only rows
    changed["image"][4:6] = torch.rand(2, 1, 32, 32) * 7  # hidden x of the y-only rows
    losses2, grads2 = _losses_and_grads(model, step, changed)
    assert losses.keys() == losses2.keys() and grads.keys() == grads2.keys()
    for k in losses:
        assert torch.equal(losses[k], losses2[k]), k
    for n in grads:
        assert torch.equal(grads[n], grads2[n]), n


def test_pix2pix_ignores_unpaired_rows_entirely() -> None:
    """Pix2Pix is supervised: even the visible x of x-only rows and y of y-only rows are unused."""
    model = _model()
    step = _step("pix2pix", model)
    raw = _batch(MIXED)
    losses, grads = _losses_and_grads(model, step, raw)
    changed = {k: v.clone() for k, v in raw.items()}
    changed["image"][2:4] = torch.rand(2, 1, 32, 32)
    changed["label"][4:6] = torch.randint(0, 3, (2, 1, 32, 32))
    losses2, grads2 = _losses_and_grads(model, step, changed)
    for k in losses:
        assert torch.equal(losses[k], losses2[k]), k
    for n in grads:
        assert torch.equal(grads[n], grads2[n]), n
    changed["label"][0] = (changed["label"][0] + 1) % 3  # a paired row's y does matter
    losses3, _ = _losses_and_grads(model, step, changed)
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
    model = _model()
    step = _step("cyclegan", model)
    raw = _batch([Mode.PAIRED] * 4)
    losses, grads = _losses_and_grads(model, step, raw)
    shuffled = dict(raw, label=raw["label"][torch.tensor([2, 0, 3, 1])])
    losses2, grads2 = _losses_and_grads(model, step, shuffled)
    _assert_close(losses, losses2)
    _assert_close(grads, grads2)
    assert not torch.equal(
        losses2["cyc_label"], _losses_and_grads(model, step, _batch([Mode.PAIRED] * 4, 2))[0]["cyc_label"]
    )

    # The same x and y as unpaired rows (x-only rows, then y-only rows) give the same values.
    split = {
        "image": torch.cat([raw["image"], torch.zeros_like(raw["image"])]),
        "label": torch.cat([torch.zeros_like(raw["label"]), raw["label"]]),
        "mode": torch.tensor([int(Mode.X_ONLY)] * 4 + [int(Mode.Y_ONLY)] * 4),
    }
    losses3, grads3 = _losses_and_grads(model, step, split)
    _assert_close(losses, losses3)
    _assert_close(grads, grads3)


def test_cyclegan_cycle_reads_the_domain_loss_and_both_critics() -> None:
    model = _model()
    step = _step("cyclegan", model)
    assert set(step.critics.critics) == {"image", "label"}
    raw = _batch(MIXED)
    batch = model.make_batch(raw)
    out = step.forward(step.generators, batch)
    assert out["cyc_label"].shape == (6, 3, 32, 32) and out["cyc_image"].shape == (6, 1, 32, 32)
    # Translations into a mask are probabilities: what the critic sees and the cycle re-encodes.
    assert torch.allclose(out["fake_label"].sum(1), torch.ones(6, 32, 32))


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_landmark_domain_trains_with_image_space_critics(method: str) -> None:
    model = _model(64, [Domain("image", "image", 3), Domain("label", "landmarks", 136)])
    step = _step(method, model)
    raw = {
        "image": torch.rand(4, 3, 64, 64),
        "label": torch.rand(4, 136),
        "mode": torch.tensor([Mode.PAIRED, Mode.PAIRED, Mode.X_ONLY, Mode.Y_ONLY]),
    }
    terms = method_stages(method, model.names)[0].weights
    batch = model.make_batch(raw)
    out = step.forward(step.generators, batch)
    losses = step.generator_terms(step.critics, out, batch, terms)
    total = torch.stack(list(losses.values())).sum() + step.critic_loss(step.critics, out, batch, terms)
    total.backward()
    assert torch.isfinite(total)
    in_channels = {d: c.model[0].in_channels for d, c in step.critics.critics.items()}
    assert in_channels == ({"label": 139} if method == "pix2pix" else {"image": 3, "label": 136})


def _rows(p: float = 0.5) -> list[dict]:
    return make_rows(*generate_sit(20, size=32, seed=0), proportion=p)["train"]


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_one_epoch_updates_the_generators_and_the_image_critics(method: str) -> None:
    rows = _rows()
    model = _model(domains=[Domain("image", "image", 1), Domain("label", "mask", 2)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(rows, batch_size=8, sampler=row_sampler(rows))
    trainer = SemiSupervisedTrainer("cpu", 1, loader, model, method=method, image_ndf=4)
    critics_before = [p.clone() for p in trainer.step.critics.parameters()]
    trainer.run()

    assert trainer.betas == (0.5, 0.999)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generators.") for k in changed)
    assert not any(k.startswith("critics.") for k in changed)  # LSM's latent critics are not trained
    assert all(
        not torch.equal(a, b) for a, b in zip(critics_before, trainer.step.critics.parameters(), strict=True)
    )
    assert all(p.requires_grad for p in trainer.step.critics.parameters())
    terms = set(method_stages(method, model.names)[0].weights)
    assert {"train_loss", "train_critic", *(f"train_{t}" for t in terms)} <= set(trainer.state.metrics)
    if method == "pix2pix":  # the y -> x half of the generators has no term in Pix2Pix
        assert not any(
            k.startswith(("generators.encoders.label", "generators.decoders.image")) for k in changed
        )


class _Validator(Engine):
    """A validator whose key metric rises every epoch, so each epoch's weights are saved."""

    def __init__(self) -> None:
        super().__init__(lambda e, b: None)
        self.state.key_metric_name = "m"

    def validate(self, epoch: int) -> None:
        self.state.metrics = {"m": float(epoch)}
        self.fire_event(Events.COMPLETED)


def test_pix2pix_checkpoint_is_a_plain_lsm_state_dict(tmp_path: Path) -> None:
    rows = _rows()
    model = _model(domains=[Domain("image", "image", 1), Domain("label", "mask", 2)])
    trainer = SemiSupervisedTrainer(
        "cpu", 1, DataLoader(rows, batch_size=8), model, method="pix2pix", image_ndf=4
    )
    validator = _Validator()
    StagedEarlyStopping(patience=2, ckpt_path=tmp_path / "model.pt", trainer=trainer).attach(validator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.validate(e.state.epoch))
    trainer.run()

    saved = torch.load(tmp_path / "model.pt")
    plain = LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 2)], ngf=4, ndf=4, image_size=32
    )
    plain.load_state_dict(saved)  # strict: no image-critic keys, none missing
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))


def test_trainer_and_bundle_settings_accept_the_baselines() -> None:
    for method in ("pix2pix", "cyclegan"):
        assert check_settings(method, 0.5, Path(__file__).parent)
    with pytest.raises(SystemExit, match="valid: basic, sop, ioda, lsm, pix2pix, cyclegan"):
        check_settings("gan", 0.5, Path(__file__).parent)
    with pytest.raises(ValueError, match="pix2pix, cyclegan"):
        SemiSupervisedTrainer("cpu", 1, DataLoader(_rows()), _model(), method="cycle-gan")
    with pytest.raises(ValueError, match="valid: bce, lsgan"):
        SemiSupervisedTrainer("cpu", 1, DataLoader(_rows()), _model(), method="cyclegan", gan_loss="wgan")
