"""``lsmseg tune``: Optuna search of the learning rate and loss weights of a method on a bundle.

A thin shell over :func:`lsmseg.experiments.tune.run_tune`: options are parsed here without
importing torch or optuna; the end is the best validation score and the command that trains
the bundle with the best settings.
"""

from __future__ import annotations

import argparse
import sys

from lsmseg.cli.args import add_run_settings, command, positive_int, proportion, run_overrides

EPILOG = """\
search space (log-uniform): learning_rate 1e-5..1e-2; each loss weight the method reads,
  1e-2..1e2 (lsm: rec, sup, reverse, lat, adv; basic: sup; sop: rec, sup; ioda: sup)
objective: the best VALIDATION metric of the trial's training run (the test split is never read)
sampler TPE, median pruner (after 5 finished trials and 5 validations), fed after each validation

outputs (in --out DIR):
  study.db             the study (default --storage sqlite:///DIR/study.db)
  trials.csv           number, state, value, each setting, best_epoch, epochs, pruned_at, seconds
  best_overrides.json  the best trial's settings, merged after train.json by monai.bundle run
  trials/<number>/     each trial's TensorBoard logs

The same command continues the study: finished (complete or pruned) trials count toward
--trials. Workers on several machines share a study through one --storage URL
(e.g. postgresql://user@host/db) and --study-name; give each a different --sampler-seed.

examples:
  lsmseg tune --bundle bundles/lsm_sit --method lsm --proportion 0.2 --preset cpu --out tune/sit_lsm_p0.2
  python -m monai.bundle run training --config_file \\
      "['bundles/lsm_sit/configs/train.json','tune/sit_lsm_p0.2/best_overrides.json']"
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "tune",
        help="tune the learning rate and loss weights of a method on a bundle (Optuna)",
        description=(
            "Bayesian search (Optuna TPE, median pruning) of the learning rate and the loss weights "
            "of one method at one paired proportion; each trial trains the bundle and is scored by "
            "its best validation metric. Writes the best settings as a monai.bundle config file."
        ),
        epilog=EPILOG,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder, e.g. bundles/lsm_sit")
    p.add_argument("--method", required=True, metavar="M", help="basic, sop, ioda, lsm, lsmABCD, ...")
    p.add_argument(
        "--proportion", required=True, type=proportion, metavar="P", help="paired fraction in (0, 1]"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--trials", type=positive_int, default=40, metavar="N", help="study budget (default 40, the paper's)"
    )
    p.add_argument(
        "--storage", metavar="URL", help="SQLAlchemy URL of the study (default sqlite:///OUT/study.db)"
    )
    p.add_argument("--study-name", metavar="NAME", help="default <bundle>_<method>_p<proportion>")
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="training seed of every trial (default 0)"
    )
    p.add_argument(
        "--sampler-seed",
        type=int,
        metavar="S",
        help="TPE seed (default: --seed + trials already in the study)",
    )
    add_run_settings(p, preset_help="as lsmseg sweep (default paper)", set_example="ngf=8")


def run(args: argparse.Namespace) -> int:
    from lsmseg.experiments.tune import run_tune, tune_setup

    overrides = run_overrides(args)
    setup = tune_setup(args.bundle, args.method, args.proportion, args.out, args.seed, args.preset, overrides)
    try:
        report = run_tune(setup, args.trials, args.storage, args.study_name, args.sampler_seed)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished trials are in the study; the same command continues it", file=sys.stderr
        )
        return 130
    print(f"{report.ran} trial(s) run; the study holds {report.counted} finished trial(s)")
    print(f"trials:  {report.trials_csv}")
    if report.best_overrides is None:
        print("no trial has completed yet: no best settings")
        return 0
    best = report.study.best_trial
    print(f"best:    trial {best.number}, validation {best.value:.4f}, {best.params}")
    configs = setup.bundle / "configs" / "train.json"
    print(f"settings: {report.best_overrides}")
    print(
        f"train:   python -m monai.bundle run training --config_file \"['{configs}','{report.best_overrides}']\""
    )
    return 0
