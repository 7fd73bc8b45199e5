"""The bulk runner's tests run in the CLI tests' environment: a private config directory and no
GIGACHAT_* / GIGAPY_* settings from the outside (the same fixtures)."""

from ..cli.conftest import config_dir, env, subprocess_env

__all__ = ["config_dir", "env", "subprocess_env"]
