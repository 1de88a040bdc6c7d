"""The tune library: search space per method, the pruning handler, the override file, resuming."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from monai.bundle import ConfigParser

from lsmseg.errors import UsageError
from lsmseg.experiments.tune import PruningHandler, open_study, study_direction, tune_setup, tuned_lambdas
from tests.helpers.experiments import REPO, SIT_BUNDLE


@pytest.mark.parametrize(
    ("method", "lambdas"),
    [
        ("lsm", ["rec", "sup", "reverse", "lat", "adv"]),
        ("lsm1010", ["sup", "lat", "reverse"]),  # switches lat, adv, reverse, rec: 1, 0, 1, 0
        ("basic", ["sup"]),
        ("sop", ["rec", "sup"]),
        ("ioda", ["sup"]),  # its pre-training stages weigh the reconstruction by a fixed 1
        ("cyclegan", ["gan", "cyc"]),
    ],
)
def test_tuned_lambdas_are_the_weights_a_method_reads(method: str, lambdas: list[str]) -> None:
    assert sorted(tuned_lambdas(method)) == sorted(lambdas)


class FakeTrial:
    """What the handler calls of an ``optuna.Trial``, with a fixed pruning answer."""

    def __init__(self, prune: bool) -> None:
        self.prune = prune
        self.reported: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reported.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def _engines(epoch: int) -> tuple[SimpleNamespace, SimpleNamespace]:
    trainer = SimpleNamespace(state=SimpleNamespace(epoch=epoch), terminated=False)
    trainer.terminate = lambda: setattr(trainer, "terminated", True)
    evaluator = SimpleNamespace(
        state=SimpleNamespace(metrics={"val_mean_iou": 0.25}, key_metric_name="val_mean_iou")
    )
    return trainer, evaluator


def test_pruned_trial_stops_the_trainer_then_raises_trial_pruned() -> None:
    trainer, evaluator = _engines(epoch=7)
    trial = FakeTrial(prune=True)
    handler = PruningHandler(trial, trainer)  # type: ignore[arg-type]
    handler(evaluator)  # type: ignore[arg-type]
    assert trial.reported == [(0.25, 7)] and trainer.terminated and handler.pruned_at == 7
    with pytest.raises(optuna.TrialPruned, match="epoch 7"):
        handler.raise_if_pruned()


def test_a_trial_the_pruner_keeps_runs_on() -> None:
    trainer, evaluator = _engines(epoch=2)
    handler = PruningHandler(FakeTrial(prune=False), trainer)  # type: ignore[arg-type]
    handler(evaluator)  # type: ignore[arg-type]
    handler.raise_if_pruned()
    assert not trainer.terminated and handler.pruned_at is None


def test_override_file_merges_into_train_json_as_monai_bundle_run_does(tmp_path: Path) -> None:
    """``--config_file "['train.json','best_overrides.json']"``: later files win, ``lambdas#sup``
    reaches into the bundle's lambdas and leaves the other weights alone."""
    best = tmp_path / "best_overrides.json"
    best.write_text(json.dumps({"method": "basic", "learning_rate": 0.003, "lambdas#sup": 2.5}))
    train = SIT_BUNDLE / "configs" / "train.json"
    config = ConfigParser.load_config_files([str(train), str(best)])
    defaults = json.loads(train.read_text())["lambdas"]
    assert config["learning_rate"] == 0.003 and config["method"] == "basic"
    assert config["lambdas"] == {**defaults, "sup": 2.5}


def test_direction_follows_the_bundle_metric() -> None:
    assert study_direction(SIT_BUNDLE) == "maximize"
    assert study_direction(REPO / "bundles" / "lsm_300w") == "minimize"


def test_a_study_keeps_what_it_tunes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    lsm = tune_setup(SIT_BUNDLE, "lsm", 0.2, tmp_path, overrides={"ngf": 4})
    open_study(lsm, storage, "s")
    assert open_study(lsm, storage, "s").user_attrs["setup"]["search"][0] == "learning_rate"
    with pytest.raises(UsageError, match="method, search differ"):
        open_study(tune_setup(SIT_BUNDLE, "basic", 0.2, tmp_path, overrides={"ngf": 4}), storage, "s")


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown method"):
        tune_setup(SIT_BUNDLE, "nope", 0.2, tmp_path)
    with pytest.raises(UsageError, match="proportion"):
        tune_setup(SIT_BUNDLE, "lsm", 1.5, tmp_path)


def test_a_pruned_trial_stops_training_after_that_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pruner that prunes any IoU below 2, the first validation stops a 3-epoch run."""
    from lsmseg.experiments.tune import run_tune
    from tests.helpers.experiments import write_tiny_sit

    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **_: optuna.pruners.ThresholdPruner(lower=2.0))
    tiny = {"dataset_dir": str(write_tiny_sit(tmp_path / "sit32")), "image_size": 32, "ngf": 4, "ndf": 4}
    setup = tune_setup(SIT_BUNDLE, "basic", 1.0, tmp_path / "tune", overrides={**tiny, "max_epochs": 3})
    report = run_tune(setup, trials=1, log=lambda line: None)
    (trial,) = report.study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and report.counted == 1
    assert trial.user_attrs["pruned_at"] == 1 and trial.user_attrs["epochs"] == 1
    assert report.best_overrides is None and (tmp_path / "tune" / "trials.csv").is_file()
