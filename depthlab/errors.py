"""depthlab's user-facing error: the CLI prints it as one line instead of a traceback."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what would be right."""
