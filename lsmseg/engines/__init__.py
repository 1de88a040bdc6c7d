"""Ignite engines and handlers of lsmseg."""

from lsmseg.engines.evaluation import IoUReport
from lsmseg.engines.floor import landmark_floor, mask_floor
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
    "landmark_floor",
    "lower_is_better",
    "mask_floor",
    "save_state_dict",
]
