"""The resolved configuration of a training run: what `config.json` records and a run reproduces."""

import dataclasses
import json
import math

from ladder_vae import hyperparameters
from ladder_vae.atomic import atomic_path
from ladder_vae.errors import ConfigError


# The smallest batch the MMD term can be estimated on (see `losses.mmd`).
MIN_BATCH_SIZE = 2
# Path flags, and what leaving each out gives.
EMPTY_PATH_ADVICE = {
    "run_dir": "runs/<timestamp>",
    "data_dir": "TFDS",
    "tfds_data_dir": "$TFDS_DATA_DIR or ~/tensorflow_datasets",
}


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; `train.py`'s flags map one to one onto these fields.

    The model's defaults are those of `ladder_vae.hyperparameters`, what measured best on MNIST
    (README "Choices").
    """

    dataset: str = "mnist"
    data_dir: str = None
    tfds_data_dir: str = None
    run_dir: str = None
    epochs: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-3
    latent_dims: tuple = hyperparameters.LATENT_DIMS
    base_filters: int = hyperparameters.BASE_FILTERS
    reconstruction_sigma: float = hyperparameters.RECONSTRUCTION_SIGMA
    mmd_weight: float = hyperparameters.MMD_WEIGHT
    ssim_weight: float = hyperparameters.SSIM_WEIGHT
    mmd_per_level: bool = hyperparameters.MMD_PER_LEVEL
    level_input: str = hyperparameters.LEVEL_INPUT
    level_resample: float = hyperparameters.LEVEL_RESAMPLE
    # None: no KL term; else one weight per level, lowest first.
    level_kl_weights: tuple = None
    seed: int = 0
    # Callbacks.
    early_stopping_patience: int = 20
    early_stopping_min_delta: float = 0.0
    lr_schedule: str = "plateau"
    lr_patience: int = 8
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    warmup_epochs: int = 5
    sample_every: int = 1
    # Speed.
    jit_compile: bool = False
    mixed_precision: bool = False
    strategy: str = "default"
    # multiworker: seconds to wait for a peer before giving up (see ladder_vae.distribute).
    peer_timeout: float = 120.0
    export: bool = True

    def validate(self):
        """Raises ConfigError, naming the flag, for values no run can use."""
        # An empty path is a mistake (an unset variable in a script), not a request for the
        # default that leaving the flag out gives.
        for name, default in EMPTY_PATH_ADVICE.items():
            if getattr(self, name) is not None and not str(getattr(self, name)).strip():
                raise ConfigError(
                    f"{_flag(name)} {getattr(self, name)!r}: empty path; name a directory, or "
                    f"leave the flag out for {default}"
                )
        positive_ints = ("epochs", "batch_size", "base_filters", "sample_every")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{_flag(name)} must be a positive integer. Received: {value!r}")
        if self.batch_size < MIN_BATCH_SIZE:
            raise ConfigError(
                f"--batch-size must be at least {MIN_BATCH_SIZE}: the unbiased MMD compares "
                "the codes of a batch in pairs, and with one code it is -2k(z, prior draw), "
                f"always negative. Received: {self.batch_size}"
            )
        for name in ("early_stopping_patience", "lr_patience", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{_flag(name)} must be an integer >= 0. Received: {value!r}")
        positive_numbers = (
            "learning_rate",
            "reconstruction_sigma",
            "min_learning_rate",
            "lr_factor",
            "peer_timeout",
        )
        for name in positive_numbers:
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise ConfigError(
                    f"{_flag(name)} must be a finite number > 0. Received: {value!r}"
                )
        for name in ("mmd_weight", "ssim_weight", "early_stopping_min_delta"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ConfigError(
                    f"{_flag(name)} must be a finite number >= 0. Received: {value!r}"
                )
        seed = self.seed
        # The range that numpy's and keras.utils.set_random_seed's generators accept.
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ConfigError(f"--seed must be an integer in [0, 2**32 - 1]. Received: {seed!r}")
        if self.lr_factor >= 1:
            raise ConfigError(f"--lr-factor must be below 1. Received: {self.lr_factor!r}")
        dims = self.latent_dims
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ConfigError(
                f"--latent-dims must be one positive integer per level. Received: {dims!r}"
            )
        if self.lr_schedule not in ("plateau", "cosine"):
            raise ConfigError(
                f"--lr-schedule must be 'plateau' or 'cosine'. Received: {self.lr_schedule!r}"
            )
        # Also checked where the schedule is built; here it fails before anything is written.
        if self.lr_schedule == "cosine" and self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"--warmup-epochs {self.warmup_epochs} leaves no epoch for the cosine decay of "
                f"--epochs {self.epochs}; use fewer warm-up epochs"
            )
        if not _finite(self.level_resample) or not 0 <= self.level_resample < 1:
            raise ConfigError(
                f"--level-resample must be a probability in [0, 1). "
                f"Received: {self.level_resample!r}"
            )
        weights = self.level_kl_weights
        if weights is not None and (
            len(weights) != len(dims) or not all(_finite(w) and w >= 0 for w in weights)
        ):
            raise ConfigError(
                "--level-kl-weights must give one finite weight >= 0 per level "
                f"({len(dims)} from --latent-dims {','.join(map(str, dims))}). "
                f"Received: {','.join(map(_number, weights))}"
            )
        if self.level_input not in hyperparameters.LEVEL_INPUTS:
            raise ConfigError(
                "--level-input must be one of "
                f"{', '.join(repr(name) for name in hyperparameters.LEVEL_INPUTS)}. "
                f"Received: {self.level_input!r}"
            )
        if self.strategy not in ("default", "mirrored", "multiworker"):
            raise ConfigError(
                "--strategy must be 'default', 'mirrored' or 'multiworker'. "
                f"Received: {self.strategy!r}"
            )
        return self

    def model_kwargs(self, image_shape):
        """Constructor arguments of `LadderVAE` for images of `image_shape`."""
        return {
            "image_shape": tuple(image_shape),
            "latent_dims": tuple(self.latent_dims),
            "base_filters": self.base_filters,
            "reconstruction_sigma": self.reconstruction_sigma,
            "mmd_weight": self.mmd_weight,
            "ssim_weight": self.ssim_weight,
            "mmd_per_level": self.mmd_per_level,
            "level_input": self.level_input,
            "level_resample": self.level_resample,
            "level_kl_weights": self.level_kl_weights,
            "seed": self.seed,
        }

    def to_dict(self):
        config = dataclasses.asdict(self)
        config["latent_dims"] = list(self.latent_dims)
        if self.level_kl_weights is not None:
            config["level_kl_weights"] = list(self.level_kl_weights)
        return config

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        for name in ("latent_dims", "level_kl_weights"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def _flag(name):
    return "--" + name.replace("_", "-").replace("early-stopping-", "")


def _number(value):
    """`0.1`, `0`, `nan` for numbers (as they are typed), repr for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return repr(value)


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def write_json(path, payload):
    """Writes JSON to a temporary name, then renames it into place: a kill leaves no half file."""
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        json.dump(payload, file, indent=2, sort_keys=True)
        file.write("\n")
