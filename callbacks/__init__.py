"""Keras callbacks that a ladder-VAE run needs beyond Keras's own (one callback per module), and
`for_run`, which assembles a run's callbacks.

They are built on `ladder_vae` (atomic writes, image grids, the run directory) and `ladder_vae`
never imports them: the arrow goes callbacks -> ladder_vae."""

from callbacks.atomic_backup_and_restore import AtomicBackupAndRestore, DamagedBackupError
from callbacks.chief_state_broadcast import ChiefStateBroadcast
from callbacks.best_model_checkpoint import BestModelCheckpoint
from callbacks.config_text import ConfigText
from callbacks.epoch_images import EpochImages
from callbacks.learning_rate_logger import LearningRateLogger
from callbacks.level_traversal import LevelTraversal
from callbacks.reconstruction_grid import ReconstructionGrid
from callbacks.resumable_csv_logger import ResumableCSVLogger
from callbacks.run_callbacks import for_run
from callbacks.sample_grid import SampleGrid, write_animation
from callbacks.terminate_on_non_finite import NonFiniteLossError, TerminateOnNonFinite

__all__ = [
    "AtomicBackupAndRestore",
    "DamagedBackupError",
    "BestModelCheckpoint",
    "ChiefStateBroadcast",
    "ConfigText",
    "EpochImages",
    "LearningRateLogger",
    "LevelTraversal",
    "NonFiniteLossError",
    "ReconstructionGrid",
    "ResumableCSVLogger",
    "SampleGrid",
    "TerminateOnNonFinite",
    "for_run",
    "write_animation",
]
