"""NRMSE metric and report on hand-made faces, lower-is-better early stopping, .pts output, and a
tiny LSM that learns landmarks from synthetic faces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from monai.handlers import ValidationHandler, from_engine
from monai.transforms import Activationsd

from lsmseg.data.faces import generate_faces
from lsmseg.data.landmark_rows import LANDMARKS, make_landmark_rows
from lsmseg.data.split import row_sampler
from lsmseg.data.w300 import read_pts
from lsmseg.engines import SemiSupervisedTrainer, StagedEarlyStopping
from lsmseg.engines.landmarks import (
    NrmseHandler,
    NrmseReport,
    PrepareDomainBatch,
    PtsWriter,
    lower_is_better,
)
from lsmseg.engines.metrics import mean_shape_nrmse, nrmse
from lsmseg.methods import Domain, LatentSpaceMapping


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared CI box, several spinning threads per test slow training ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hand_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """Two faces (B, 136) with an inter-ocular distance of 0.5 and a known error.

    Face 0: every point off by (0.03, 0.04), error 0.05 -> NRMSE 0.05 / 0.5 = 0.1.
    Face 1: one point off by 0.68, error 0.68 / 68 = 0.01 -> NRMSE 0.02. Mean 0.06.
    """
    target = torch.full((2, 68, 2), 0.5)
    target[:, 36] = torch.tensor([0.25, 0.4])  # outer eye corners (iBUG 36 and 45), 0.5 apart
    target[:, 45] = torch.tensor([0.75, 0.4])
    target[:, 37] = torch.tensor([0.3, 0.35])  # upper-lid points the reference convention uses,
    target[:, 46] = torch.tensor([0.7, 0.45])  # sqrt(0.17) apart
    pred = target.clone()
    pred[0] += torch.tensor([0.03, 0.04])
    pred[1, 10, 1] += 0.68
    return pred.reshape(2, 136), target.reshape(2, 136)


class _ItemsEngine(Engine):
    """Emits the decollated items an evaluator would, one batch per iteration."""

    def __init__(self) -> None:
        super().__init__(lambda engine, items: items)


def test_nrmse_handler_and_report_are_exact_on_a_hand_example(tmp_path: Path) -> None:
    pred, target = _hand_faces()
    batches = [[{"pred": pred[0], "label": target[0]}], [{"pred": pred[1], "label": target[1]}]]
    engine = _ItemsEngine()
    NrmseHandler(output_transform=from_engine(["pred", "label"])).attach(engine, "val_nrmse")
    report = NrmseReport(tmp_path / "metrics.json")
    report.attach(engine)
    engine.run(batches)
    assert engine.state.metrics["val_nrmse"] == pytest.approx(0.06, abs=1e-6)
    assert engine.state.metric_details["val_nrmse"].reshape(-1).tolist() == pytest.approx(
        [0.1, 0.02], abs=1e-6
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["n"] == 2 and written["nrmse"] == pytest.approx(0.06, abs=1e-6)
    engine.run(batches[:1])  # a second run starts from an empty buffer
    assert engine.state.metrics["val_nrmse"] == pytest.approx(0.1, abs=1e-6)


def test_reference_convention_is_an_explicit_option() -> None:
    pred, target = _hand_faces()
    engine = _ItemsEngine()
    NrmseHandler(convention="reference", output_transform=from_engine(["pred", "label"])).attach(engine, "m")
    engine.run([[{"pred": p, "label": t} for p, t in zip(pred, target, strict=True)]])
    assert engine.state.metrics["m"] == pytest.approx(0.06 * 0.5 / 0.17**0.5, abs=1e-6)


class _ScriptedValidator(Engine):
    """A validator whose key metric follows a script."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__(lambda e, b: None)
        self.scores = scores
        self.state.key_metric_name = "val_nrmse"

    def validate(self, epoch: int) -> None:
        self.state.metrics = {"val_nrmse": self.scores[epoch - 1]}
        self.fire_event(Events.COMPLETED)


def _tiny_net(ngf: int = 4) -> LatentSpaceMapping:
    torch.manual_seed(0)
    return LatentSpaceMapping(
        [Domain("image", "image", 3), Domain(LANDMARKS, "landmarks", 136)], ngf=ngf, ndf=ngf, image_size=64
    )


def _rows(n: int, proportion: float = 1.0) -> dict[str, list[dict]]:
    return make_landmark_rows(*generate_faces(n, seed=0), proportion=proportion, seed=0)


def test_early_stopping_minimises_nrmse_and_keeps_the_lowest(tmp_path: Path) -> None:
    rows = _rows(10)
    net = _tiny_net()
    trainer = SemiSupervisedTrainer("cpu", 10, DataLoader(rows["train"], batch_size=6), net, method="basic")
    validator = _ScriptedValidator([0.5, 0.2, 0.3, 0.25, 0.1])
    stopper = StagedEarlyStopping(patience=2, ckpt_path=tmp_path / "model.pt", trainer=trainer, mode="min")
    stopper.attach(validator)
    snapshots: dict[int, dict] = {}

    def validate(engine: Engine) -> None:
        snapshots[engine.state.epoch] = {k: v.clone() for k, v in net.state_dict().items()}
        validator.validate(engine.state.epoch)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    trainer.run()
    assert trainer.state.epoch == 4  # best (lowest) at 2, then 0.3 and 0.25 do not improve
    assert stopper.best_epoch == 2 and stopper.best_metric == pytest.approx(0.2)
    assert trainer.state.best_metric == pytest.approx(0.2)
    saved = torch.load(tmp_path / "model.pt")
    for k, v in net.state_dict().items():
        assert torch.equal(v, snapshots[2][k]) and torch.equal(saved[k], snapshots[2][k])
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        StagedEarlyStopping(patience=2, mode="lowest")  # type: ignore[arg-type]


def test_lower_is_better_is_a_metric_cmp_fn() -> None:
    assert lower_is_better(0.1, 0.2) and not lower_is_better(0.2, 0.1)


def test_prepare_domain_batch_reads_domain_keys() -> None:
    batch = {"image": torch.zeros(2, 3, 4, 4), LANDMARKS: torch.ones(2, 136), "mode": torch.zeros(2)}
    x, y = PrepareDomainBatch()(batch, "cpu")
    assert x.shape == (2, 3, 4, 4) and y is not None and y.shape == (2, 136)
    x, y = PrepareDomainBatch()({"image": torch.zeros(1, 3, 4, 4)}, "cpu")
    assert y is None


def test_pts_writer_writes_source_pixel_coordinates(tmp_path: Path) -> None:
    pred = torch.rand(2, 136)
    inputs = [
        {"image": torch.rand(3, 64, 64), "name": f"face_{i}", "origin": torch.tensor([10.0 * i, 5.0]),
         "extent": torch.tensor([100.0, 50.0])}
        for i in range(2)
    ]  # fmt: skip

    def network(x: torch.Tensor) -> torch.Tensor:
        return torch.logit(pred[: len(x)])  # sigmoid in the postprocessing gives pred back

    evaluator = SupervisedEvaluator(
        "cpu",
        DataLoader(inputs, batch_size=2),
        network,  # type: ignore[arg-type]
        prepare_batch=PrepareDomainBatch(),
        postprocessing=Activationsd(keys="pred", sigmoid=True),
        val_handlers=[PtsWriter(tmp_path / "pts")],
    )
    evaluator.run()
    for i in range(2):
        points = read_pts(tmp_path / "pts" / f"face_{i}.pts")
        expected = pred[i].reshape(68, 2).double().numpy() * [100.0, 50.0] + [10.0 * i, 5.0] - 0.5
        np.testing.assert_allclose(points, expected, atol=2e-4)  # .pts keeps 4 decimals


@pytest.mark.slow
def test_tiny_lsm_on_synthetic_faces_beats_the_mean_shape_clearly() -> None:
    """300 faces, ngf 8, Adam 1e-3, batch 8, 12 epochs; best weights by validation NRMSE."""
    rows = _rows(300)
    net = _tiny_net(ngf=8)
    prepare = PrepareDomainBatch()
    validator = SupervisedEvaluator(
        "cpu",
        DataLoader(rows["valid"], batch_size=30),
        net,
        prepare_batch=prepare,
        postprocessing=Activationsd(keys="pred", sigmoid=True),
        key_val_metric={"val_nrmse": NrmseHandler(output_transform=from_engine(["pred", "label"]))},
        metric_cmp_fn=lower_is_better,
    )
    stopper = StagedEarlyStopping(patience=4, mode="min")
    stopper.attach(validator)
    loader = DataLoader(rows["train"], batch_size=8, sampler=row_sampler(rows["train"], seed=0))
    trainer = SemiSupervisedTrainer(
        "cpu", 12, loader, net, method="lsm", learning_rate=1e-3, handlers=[ValidationHandler(1, validator)]
    )
    stopper.set_trainer(trainer)
    trainer.run()

    test_images = torch.as_tensor(np.stack([r["image"] for r in rows["test"]]))
    test_landmarks = np.stack([r[LANDMARKS] for r in rows["test"]])
    with torch.no_grad():
        pred = net.target.activate(net.eval()(test_images))
    model = float(nrmse(pred.numpy(), test_landmarks).mean())
    train_landmarks = np.stack([r[LANDMARKS] for r in rows["train"]])
    baseline = mean_shape_nrmse(train_landmarks, test_landmarks)
    assert 0.12 < baseline < 0.2  # the synthetic poses vary as documented
    print(
        f"tiny LSM test NRMSE {model:.4f} (best validation {stopper.best_metric:.4f} at epoch "
        f"{stopper.best_epoch}) vs mean shape {baseline:.4f}"
    )
    assert model < 0.8 * baseline, (model, baseline, stopper.best_metric, stopper.best_epoch)
