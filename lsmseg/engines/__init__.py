"""Ignite engines and handlers of lsmseg."""

from lsmseg.engines.evaluation import IoUReport
from lsmseg.engines.handlers import StagedEarlyStopping, save_state_dict
from lsmseg.engines.landmarks import NrmseHandler, NrmseReport, PrepareDomainBatch, PtsWriter, lower_is_better
from lsmseg.engines.trainer import SemiSupervisedTrainer

__all__ = [
    "IoUReport",
    "NrmseHandler",
    "NrmseReport",
    "PrepareDomainBatch",
    "PtsWriter",
    "SemiSupervisedTrainer",
    "StagedEarlyStopping",
    "lower_is_better",
    "save_state_dict",
]
