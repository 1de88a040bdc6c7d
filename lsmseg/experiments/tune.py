"""Hyper-parameter search over a bundle with Optuna, as the paper tunes LSM (40 Bayesian trials
per proportion, the learning rate and each loss weight in log space).

Each trial trains the bundle (``configs/train.json``) through :class:`monai.bundle.ConfigWorkflow`
with the trial's settings as overrides (:func:`lsmseg.experiments.run.train_bundle`, as a sweep run
does) and returns its best **validation** metric: the test split is never read, so a tuned
model's test score stays an honest estimate. Sampler: TPE; pruner: median, fed after every
validation by :class:`PruningHandler`.

The study lives in any SQLAlchemy URL (default ``sqlite:///<out>/study.db``): re-running the
same command continues it, and many workers pointed at one database (e.g. PostgreSQL on a
cluster) share it; trials already finished (complete or pruned) count toward ``trials``.

Layout of the output folder ``DIR``::

    DIR/study.db                  the study (default storage)
    DIR/trials.csv                one row per trial: number, state, value, settings, epochs
    DIR/best_overrides.json       the best trial's settings, a config file for monai.bundle run
    DIR/trials/<number>/          output/ (TensorBoard logs); the checkpoint is removed after the trial
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ignite.engine import Engine, Events

from lsmseg.errors import UsageError
from lsmseg.experiments.grid import check_bundle, fmt_proportion, preset_overrides
from lsmseg.experiments.run import train_bundle
from lsmseg.io.atomic import write_csv_atomic, write_json_atomic

if TYPE_CHECKING:
    import optuna

LR_RANGE = (1e-5, 1e-2)  # learning rate, log-uniform (the paper tunes it in log space)
LAMBDA_RANGE = (1e-2, 1e2)  # each loss weight the method reads, log-uniform
DEFAULT_TRIALS = 40  # the paper: 40 Bayesian runs per proportion
# Median pruning: no trial is pruned before 5 have finished (the median needs a few curves) nor
# before its 5th validation (early epochs of every setting look alike).
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 5
COUNTED_STATES = ("COMPLETE", "PRUNED")  # trials that count toward the budget (not FAIL / RUNNING)


class PruningHandler:
    """Evaluator handler: report the key validation metric to an Optuna trial after each
    validation (step = the trainer's epoch); when the pruner says so, stop the trainer.

    Optuna's own ``PyTorchIgnitePruningHandler`` (package ``optuna-integration``) raises
    ``TrialPruned`` inside the evaluator; MONAI's ``StatsHandler`` then logs it as an error with
    its traceback on both engines. This one ends the run as early stopping does
    (``trainer.terminate()``) and the objective raises ``TrialPruned`` after it
    (:meth:`raise_if_pruned`).

    Args:
        trial: the Optuna trial of this training run.
        trainer: the bundle's trainer (its ``state.epoch`` is the step reported).
    """

    def __init__(self, trial: optuna.Trial, trainer: Engine) -> None:
        self.trial = trial
        self.trainer = trainer
        self.pruned_at: int | None = None  # epoch at which the pruner stopped the run

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.COMPLETED, self)

    def __call__(self, evaluator: Engine) -> None:
        state: Any = evaluator.state
        epoch = int(self.trainer.state.epoch)
        self.trial.report(float(state.metrics[state.key_metric_name]), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            self.trainer.terminate()

    def raise_if_pruned(self) -> None:
        """Raise ``optuna.TrialPruned`` when the pruner stopped the run."""
        import optuna

        if self.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after the validation of epoch {self.pruned_at}")


def tuned_lambdas(method: str) -> list[str]:
    """The :class:`~lsmseg.methods.terms.Lambdas` fields a method's stages read (in field order).

    Found by building the method's stages with a distinct weight per field, so a new method (or
    a preset with fixed weights, like IODA's pre-training) needs no list kept in step here.
    """
    from lsmseg.methods.terms import Lambdas, method_stages

    names = [f.name for f in fields(Lambdas)]
    probe = {name: 1000.0 + i for i, name in enumerate(names)}
    used = {
        w for stage in method_stages(method, ["x", "y"], Lambdas(**probe)) for w in stage.weights.values()
    }
    return [name for name in names if probe[name] in used]


def suggest(trial: optuna.Trial, lambdas: Sequence[str]) -> dict[str, float]:
    """The trial's settings as bundle overrides: ``learning_rate`` and ``lambdas#<name>``.

    The parameter names are the override keys, so ``study.best_params`` is an override dict.
    """
    settings = {"learning_rate": trial.suggest_float("learning_rate", *LR_RANGE, log=True)}
    for name in lambdas:
        settings[f"lambdas#{name}"] = trial.suggest_float(f"lambdas#{name}", *LAMBDA_RANGE, log=True)
    return settings


def study_direction(bundle: Path) -> Literal["minimize", "maximize"]:
    """``minimize`` when the bundle's validation metric is lower-is-better (early stopping
    ``mode: min``, e.g. NRMSE), else ``maximize``."""
    config = json.loads((bundle / "configs" / "train.json").read_text())
    mode = config.get("validate", {}).get("early_stop", {}).get("mode", "max")
    return "minimize" if mode == "min" else "maximize"


@dataclass(frozen=True)
class TuneSetup:
    """What a study tunes: the bundle, the method and proportion, the fixed bundle overrides."""

    bundle: Path
    method: str
    proportion: float
    seed: int
    overrides: dict[str, Any]  # preset and command-line overrides, the same for every trial
    out: Path

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with its first run (machine-specific paths left out)."""
        fixed = {k: v for k, v in self.overrides.items() if k != "dataset_dir"}
        return {
            "bundle": self.bundle.name,
            "method": self.method,
            "proportion": fmt_proportion(self.proportion),
            "seed": self.seed,
            "overrides": json.loads(json.dumps(fixed)),
            "search": ["learning_rate", *tuned_lambdas(self.method)],
        }

    def base(self) -> dict[str, Any]:
        """Overrides of every trial before its own settings and folders."""
        return {
            **self.overrides,
            "bundle_root": str(self.bundle),
            "method": self.method,
            "proportion": self.proportion,
            "seed": self.seed,
        }


def objective(setup: TuneSetup, trial: optuna.Trial) -> float:
    """Train one trial; its best validation metric (``TrialPruned`` when the pruner stops it)."""
    settings = suggest(trial, tuned_lambdas(setup.method))
    trial_dir = setup.out / "trials" / f"{trial.number:04d}"
    shutil.rmtree(trial_dir, ignore_errors=True)  # a trial number is new in its study
    overrides = {
        **setup.base(),
        **settings,
        "ckpt_dir": str(trial_dir / "ckpt"),
        "output_dir": str(trial_dir / "output"),
        "resume": False,
    }
    handlers: list[PruningHandler] = []

    def attach(workflow: Any) -> None:
        handler = PruningHandler(trial, workflow.parser.get_parsed_content("train#trainer"))
        handler.attach(workflow.parser.get_parsed_content("validate#evaluator"))
        handlers.append(handler)

    t0 = time.perf_counter()
    try:
        best = train_bundle(setup.bundle / "configs", overrides, attach)
    finally:
        shutil.rmtree(trial_dir / "ckpt", ignore_errors=True)  # the override file retrains the best
        gc.collect()  # this trial's networks and loaders before the next builds its own
    trial.set_user_attr("best_epoch", best["best_epoch"])
    trial.set_user_attr("epochs", best["epochs"])
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
    for handler in handlers:
        if handler.pruned_at is not None:
            trial.set_user_attr("pruned_at", handler.pruned_at)
        handler.raise_if_pruned()
    return float(best["best_metric"])


@dataclass
class TuneReport:
    """What a tune invocation did: the study, the trials it ran, the files it wrote."""

    study: optuna.Study
    ran: int  # trials this invocation finished
    counted: int  # trials of the study that count toward the budget, now
    trials_csv: Path
    best_overrides: Path | None  # None while no trial has completed


def _counted(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in COUNTED_STATES)))


def open_study(
    setup: TuneSetup, storage: str, study_name: str, sampler_seed: int | None = None
) -> optuna.Study:
    """Create or load the study; a loaded one must tune what this invocation tunes.

    The TPE sampler is seeded with ``sampler_seed``, by default the training seed plus the
    number of trials the study already holds, so a resumed study draws new points instead of
    repeating its first random ones.
    """
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction=study_direction(setup.bundle),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
        ),
        load_if_exists=True,
    )
    identity = setup.identity()
    known = study.user_attrs.get("setup")
    if known is None:
        study.set_user_attr("setup", identity)
    elif known != identity:
        diff = sorted(k for k in set(known) | set(identity) if known.get(k) != identity.get(k))
        raise UsageError(
            f"study {study_name!r} in {storage} tunes other settings ({', '.join(diff)} differ): "
            "use another --study-name or --storage, or the same options"
        )
    seed = setup.seed + len(study.trials) if sampler_seed is None else sampler_seed
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def run_tune(
    setup: TuneSetup,
    trials: int = DEFAULT_TRIALS,
    storage: str | None = None,
    study_name: str | None = None,
    sampler_seed: int | None = None,
    log: Callable[[str], None] = print,
) -> TuneReport:
    """Run (or continue) a study until it holds ``trials`` complete or pruned trials.

    Args:
        setup: the bundle, method, proportion, seed and fixed overrides (:class:`TuneSetup`).
        trials: the study's budget, counted over every invocation and worker.
        storage: SQLAlchemy URL; default ``sqlite:///<out>/study.db``.
        study_name: default ``<bundle>_<method>_p<proportion>``.
        sampler_seed: TPE seed; default: the training seed plus the trials already in the study.
        log: receives one line per finished trial.
    """
    import optuna

    setup.out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{setup.out / 'study.db'}"
    study_name = study_name or f"{setup.bundle.name}_{setup.method}_p{fmt_proportion(setup.proportion)}"
    study = open_study(setup, storage, study_name, sampler_seed)
    before = _counted(study)
    todo = max(0, trials - before)
    log(f"tune: study {study_name!r} holds {before} finished trial(s) of {trials}; {todo} to run")
    if todo:
        states = tuple(optuna.trial.TrialState[s] for s in COUNTED_STATES)
        study.optimize(
            lambda trial: objective(setup, trial),
            n_trials=todo,
            # Other workers on the same study count too: stop when the study holds enough.
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=states), _logger(log)],
            gc_after_trial=True,
        )
    trials_csv = write_trials_csv(study, setup.out / "trials.csv")
    best = write_best_overrides(study, setup, setup.out / "best_overrides.json")
    return TuneReport(study, _counted(study) - before, _counted(study), trials_csv, best)


def _logger(log: Callable[[str], None]) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        log(f"[trial {trial.number}] {trial.state.name} validation {value} {trial.params}")

    return callback


def write_trials_csv(study: optuna.Study, path: Path) -> Path:
    """One row per trial: number, state, value (best validation metric), each setting, epochs."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
    attrs = ("best_epoch", "epochs", "pruned_at", "seconds")
    columns = ("number", "state", "value", *params, *attrs)
    rows = [
        {"number": t.number, "state": t.state.name, "value": t.value, **t.params, **t.user_attrs}
        for t in trials
    ]
    return write_csv_atomic(path, columns, rows)


def best_overrides(study: optuna.Study, setup: TuneSetup) -> dict[str, Any] | None:
    """The best complete trial's settings with the fixed ones they were tuned under (method,
    proportion, seed, preset and command-line overrides); None while no trial has completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return {**{k: v for k, v in setup.base().items() if k != "bundle_root"}, **study.best_params}


def write_best_overrides(study: optuna.Study, setup: TuneSetup, path: Path) -> Path | None:
    """``best_overrides.json``: a config file merged after ``train.json`` by ``monai.bundle run``
    (``lambdas#sup`` keys reach into the bundle's ``lambdas``; the others keep their values)."""
    overrides = best_overrides(study, setup)
    return None if overrides is None else write_json_atomic(path, overrides)


def tune_setup(
    bundle: str | Path,
    method: str,
    proportion: float,
    out: str | Path,
    seed: int = 0,
    preset: str = "paper",
    overrides: Mapping[str, Any] | None = None,
) -> TuneSetup:
    """Check the options (usage errors before anything runs) and build the :class:`TuneSetup`."""
    from lsmseg.data.split import check_proportion

    bundle_path = check_bundle(bundle)
    try:
        tuned_lambdas(method)
        check_proportion(proportion)
    except ValueError as err:
        raise UsageError(str(err)) from None
    fixed = {**preset_overrides(bundle_path, preset), **dict(overrides or {})}
    return TuneSetup(bundle_path, method, float(proportion), int(seed), fixed, Path(out).resolve())
