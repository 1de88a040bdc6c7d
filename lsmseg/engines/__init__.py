"""Ignite engines and handlers of lsmseg."""

from lsmseg.engines.evaluation import IoUReport, write_json
from lsmseg.engines.handlers import StagedEarlyStopping, save_state_dict
from lsmseg.engines.trainer import SemiSupervisedTrainer

__all__ = ["IoUReport", "SemiSupervisedTrainer", "StagedEarlyStopping", "save_state_dict", "write_json"]
