"""The error of a setting a user gave, shared by every check that names a flag, file or value.

In a module of its own, free of imports, so that the run-directory layout and the explorer can
raise and catch it without loading the training configuration.
"""


class ConfigError(ValueError):
    """An invalid setting; its message names the command-line flag, file or value at fault."""
