"""The semi-supervised engine trains, stages and stops as documented."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from torch import nn

from lsmseg.bundle import check_settings
from lsmseg.data.sit import generate_sit, make_rows
from lsmseg.data.split import row_sampler
from lsmseg.engines import SemiSupervisedTrainer, StagedEarlyStopping
from lsmseg.engines.trainer import adam
from lsmseg.methods import Domain, LatentSpaceMapping, method_stages


def _net(size: int = 32, ngf: int = 4) -> LatentSpaceMapping:
    torch.manual_seed(0)
    return LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 2)], ngf=ngf, ndf=4, image_size=size
    )


def _rows(n: int, size: int, p: float = 1.0) -> dict[str, list[dict]]:
    return make_rows(*generate_sit(n, size=size, seed=0), proportion=p)


def _ring_iou(net: LatentSpaceMapping, rows: list[dict]) -> float:
    x = torch.as_tensor(np.stack([r["image"] for r in rows]))
    y = torch.as_tensor(np.stack([r["label"] for r in rows])) == 1
    with torch.no_grad():
        pred = net(x).argmax(1, keepdim=True) == 1
    return float(((pred & y).sum((1, 2, 3)) / (pred | y).sum((1, 2, 3)).clamp(min=1)).mean())


@pytest.mark.slow
def test_tiny_lsm_beats_a_constant_predictor_on_sit() -> None:
    rows = _rows(200, 64, p=0.5)
    net = _net(64, ngf=8)
    loader = DataLoader(rows["train"], batch_size=8, sampler=row_sampler(rows["train"]))
    SemiSupervisedTrainer("cpu", 6, loader, net, method="lsm", learning_rate=1e-3).run()
    iou = _ring_iou(net, rows["test"])
    y = np.stack([r["label"] for r in rows["test"]]) == 1
    constant_ring = float(y.mean(axis=(1, 2, 3)).mean())  # IoU of predicting "ring" everywhere
    assert iou > 1.25 * constant_ring, (iou, constant_ring)


def test_one_step_updates_generators_and_critics_and_reports_every_term() -> None:
    rows = _rows(20, 32, p=0.5)
    net = _net()
    before_g = [p.clone() for p in net.generators.parameters()]
    before_c = [p.clone() for p in net.critics.parameters()]
    loader = DataLoader(rows["train"], batch_size=8, sampler=row_sampler(rows["train"]))
    trainer = SemiSupervisedTrainer("cpu", 1, loader, net, method="lsm", epoch_length=1)
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(before_g, net.generators.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_c, net.critics.parameters(), strict=True))
    assert {"train_loss", "train_critic", "train_adv_label", "train_lat_image2label"} <= set(
        trainer.state.metrics
    )
    assert all(p.requires_grad for p in net.critics.parameters())


def test_basic_never_builds_a_critic_optimiser() -> None:
    rows = _rows(20, 32)
    trainer = SemiSupervisedTrainer("cpu", 1, DataLoader(rows["train"], batch_size=4), _net(), method="basic")
    assert trainer.critic_optimizer is None


def test_ioda_runs_three_stages_on_their_budget() -> None:
    rows = _rows(20, 32)
    trainer = SemiSupervisedTrainer("cpu", 1, DataLoader(rows["train"], batch_size=7), _net(), method="ioda")
    seen: list[str] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(trainer.stage.name))
    trainer.run()
    assert seen == ["pretrain_x", "pretrain_y", "finetune"]


class _ScriptedValidator(Engine):
    """A validator whose key metric follows a script, to test stopping decisions exactly."""

    def __init__(self, scores: list[float], loader) -> None:
        super().__init__(lambda e, b: None)
        self.scores = scores
        self.data_loader = loader
        self.state.key_metric_name = "m"

    def validate(self, epoch: int) -> None:
        self.state.metrics = {"m": self.scores[epoch - 1]}
        self.fire_event(Events.COMPLETED)


def test_early_stopping_restores_the_best_weights_and_saves_them(tmp_path: Path) -> None:
    rows = _rows(20, 32)
    net = _net()
    loader = DataLoader(rows["train"], batch_size=7)
    trainer = SemiSupervisedTrainer("cpu", 10, loader, net, method="basic")
    validator = _ScriptedValidator([0.1, 0.5, 0.4, 0.3, 0.2, 0.9], loader)
    stopper = StagedEarlyStopping(patience=2, ckpt_path=tmp_path / "model.pt", trainer=trainer)
    stopper.attach(validator)
    snapshots: dict[int, dict] = {}

    def validate(engine: Engine) -> None:
        snapshots[engine.state.epoch] = {k: v.clone() for k, v in net.state_dict().items()}
        validator.validate(engine.state.epoch)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    trainer.run()
    assert trainer.state.epoch == 4  # best at 2, then two validations without improvement
    assert stopper.best_epoch == 2 and stopper.best_metric == 0.5
    saved = torch.load(tmp_path / "model.pt")
    for k, v in net.state_dict().items():
        assert torch.equal(v, snapshots[2][k]) and torch.equal(saved[k], snapshots[2][k])


def test_ioda_stages_stop_on_their_own_validation_loss(tmp_path: Path) -> None:
    rows = _rows(20, 32)
    loader = DataLoader(rows["train"], batch_size=7)
    val_loader = DataLoader(rows["valid"], batch_size=7)
    trainer = SemiSupervisedTrainer("cpu", 3, loader, _net(), method="ioda")
    validator = _ScriptedValidator([0.0] * 9, val_loader)
    StagedEarlyStopping(patience=1, ckpt_path=tmp_path / "model.pt", trainer=trainer).attach(validator)
    stages: list[str] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: stages.append(trainer.stage.name))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.validate(e.state.epoch))
    trainer.run()
    assert stages[0] == "pretrain_x" and stages[-1] == "finetune"
    assert {"pretrain_y"} <= set(stages)
    assert (tmp_path / "model.pt").exists()  # the final stage saved its best (a constant 0.0 score)


def test_bad_settings_fail_with_the_valid_choices() -> None:
    rows = _rows(20, 32)
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm, pix2pix, cyclegan"):
        SemiSupervisedTrainer("cpu", 1, DataLoader(rows["train"]), _net(), method="gan")
    with pytest.raises(ValueError, match="valid: confusion, bce"):
        LatentSpaceMapping([Domain("image", "image", 1), Domain("label", "mask", 2)], adversarial="wgan")  # type: ignore[arg-type]


def test_epoch_losses_are_the_mean_of_the_steps() -> None:
    rows = _rows(20, 32, p=0.5)
    trainer = SemiSupervisedTrainer("cpu", 1, DataLoader(rows["train"], batch_size=4), _net(), method="lsm")
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    assert len(outputs) == trainer.state.iteration > 1
    for k in outputs[0]:
        mean = sum(float(o[k]) for o in outputs) / len(outputs)
        assert trainer.state.metrics[f"train_{k}"] == pytest.approx(mean, rel=1e-6), k


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_one_epoch_updates_the_generators_and_the_image_critics(method: str) -> None:
    rows = _rows(20, 32, p=0.5)["train"]
    model = _net()
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
    terms = {t.name for t in method_stages(method, model.names)[0].weights}
    assert {"train_loss", "train_critic", *(f"train_{t}" for t in terms)} <= set(trainer.state.metrics)
    if method == "pix2pix":  # the y -> x half of the generators has no term in Pix2Pix
        assert not any(
            k.startswith(("generators.encoders.label", "generators.decoders.image")) for k in changed
        )


def test_pix2pix_checkpoint_is_a_plain_lsm_state_dict(tmp_path: Path) -> None:
    rows = _rows(20, 32, p=0.5)
    model = _net()
    trainer = SemiSupervisedTrainer(
        "cpu", 1, DataLoader(rows["train"], batch_size=8), model, method="pix2pix", image_ndf=4
    )
    validator = _ScriptedValidator([float(e) for e in range(1, 3)], None)
    StagedEarlyStopping(patience=2, ckpt_path=tmp_path / "model.pt", trainer=trainer).attach(validator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.validate(e.state.epoch))
    trainer.run()

    plain = _net()
    plain.load_state_dict(torch.load(tmp_path / "model.pt"))  # strict: no image-critic keys, none missing
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))


def test_trainer_and_bundle_settings_accept_the_baselines() -> None:
    rows = _rows(20, 32)["train"]
    for method in ("pix2pix", "cyclegan"):
        assert check_settings(method, 0.5, Path(__file__).parent)
    with pytest.raises(SystemExit, match="valid: basic, sop, ioda, lsm, pix2pix, cyclegan"):
        check_settings("gan", 0.5, Path(__file__).parent)
    with pytest.raises(SystemExit, match="unknown sampling 'once'; valid: balanced, epoch"):
        check_settings("lsm", 0.5, Path(__file__).parent, choices={"sampling": "once"})
    with pytest.raises(SystemExit, match="unknown option 'samples'"):
        check_settings("lsm", 0.5, Path(__file__).parent, choices={"samples": "epoch"})
    with pytest.raises(ValueError, match="valid: bce, lsgan"):
        SemiSupervisedTrainer("cpu", 1, DataLoader(rows), _net(), method="cyclegan", gan_loss="wgan")


def test_adam_is_fused_where_it_can_be_and_steps_as_the_per_parameter_loop() -> None:
    torch.manual_seed(0)
    start, grads = [torch.randn(3, 4), torch.randn(5)], [torch.randn(3, 4), torch.randn(5)]
    params = {kind: [nn.Parameter(p.clone()) for p in start] for kind in ("fused", "loop")}
    fused = adam(params["fused"], 1e-2, (0.9, 0.999))
    loop = torch.optim.Adam(params["loop"], lr=1e-2, betas=(0.9, 0.999), foreach=False)
    assert fused.defaults["fused"] and not fused.defaults["foreach"]
    for _ in range(3):
        for group in params.values():
            for p, g in zip(group, grads, strict=True):
                p.grad = g.clone()
        fused.step()
        loop.step()
    for a, b in zip(params["fused"], params["loop"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # A device without a fused kernel takes foreach.
    assert adam([nn.Parameter(torch.zeros(2, device="meta"))], 1e-3, (0.9, 0.999)).defaults["foreach"]


def test_the_trainer_steps_with_the_fused_adam() -> None:
    rows = _rows(20, 32, p=0.5)
    loader = DataLoader(rows["train"], batch_size=8)
    trainer = SemiSupervisedTrainer("cpu", 1, loader, _net(), method="lsm", epoch_length=1)
    assert trainer.optimizer.defaults["fused"] and trainer.critic_optimizer is not None
    assert trainer.critic_optimizer.defaults["fused"]
