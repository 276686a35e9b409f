"""The one home of what a name or a path may look like before it reaches a file system or a shell.

A *safe name* (campaign, variant, production id, Slurm partition …) starts with a letter, digit
or ``_`` and continues with ``[A-Za-z0-9_.-]``, so it can never be ``..``, an option, or carry
shell syntax. Slurm job names are built from several safe names and may be longer.
"""

import re

SAFE_CHARS = "A-Za-z0-9_.-"
MAX_NAME_LENGTH = 64
MAX_JOB_NAME_LENGTH = 128
SAFE_NAME = re.compile(rf"^[A-Za-z0-9_][{SAFE_CHARS}]{{0,{MAX_NAME_LENGTH - 1}}}$")
SAFE_JOB_NAME = re.compile(rf"^[A-Za-z0-9_][{SAFE_CHARS}]{{0,{MAX_JOB_NAME_LENGTH - 1}}}$")
SAFE_NAME_HELP = f"1-{MAX_NAME_LENGTH} characters from [{SAFE_CHARS}], not starting with '.' or '-'"

#: An absolute path from safe characters; ``..`` components are refused separately.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]*$")
SAFE_PATH_HELP = "an absolute path from [A-Za-z0-9_./+-] without '..'"
#: Placeholders a remote path may start with, replaced by the value found on the cluster.
REMOTE_HOME_PREFIXES = ("$HOME", "$SCRATCH")
#: Where campaign files keep their cluster-side files unless they say otherwise: the user's home,
#: never a world-writable place such as /tmp.
DEFAULT_REMOTE_ROOT = "$HOME/faxflow"


def check_safe_name(value: str) -> str:
    """Return ``value`` if it is a safe name; raise ValueError naming the rule otherwise."""
    if not isinstance(value, str) or not SAFE_NAME.match(value):
        raise ValueError(f"{value!r} is not a safe name ({SAFE_NAME_HELP})")
    return value


def is_safe_path(value: str) -> bool:
    return isinstance(value, str) and bool(SAFE_PATH.match(value)) and ".." not in value.split("/")


def check_remote_path(value: str) -> str:
    """A cluster path: absolute and safe, or ``$HOME/…``/``$SCRATCH/…`` resolved later on the cluster."""
    prefix = next((p for p in REMOTE_HOME_PREFIXES if value == p or value.startswith(p + "/")), None)
    rest = value[len(prefix):] if prefix else value
    if not is_safe_path(rest or "/"):
        raise ValueError(f"{value!r} must be {SAFE_PATH_HELP}, optionally starting with "
                         f"{' or '.join(REMOTE_HOME_PREFIXES)}")
    return value


def resolve_remote_path(value: str, environment: dict[str, str]) -> str:
    """Replace a leading ``$HOME``/``$SCRATCH`` by its value on the cluster (``environment``) and re-check."""
    for prefix in REMOTE_HOME_PREFIXES:
        if value == prefix or value.startswith(prefix + "/"):
            base = environment.get(prefix[1:])
            if not base:
                raise ValueError(f"{value!r}: {prefix} is not set on the cluster")
            value = base.rstrip("/") + value[len(prefix):]
            break
    if not is_safe_path(value):
        raise ValueError(f"remote path {value!r} must be {SAFE_PATH_HELP}")
    return value
