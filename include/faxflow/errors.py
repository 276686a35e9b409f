"""Failure classes shared by the CLI, the pipeline runner and the Airflow layer.

Each class carries the process exit code that ``faxflow job`` uses for it, so the
Airflow side can tell a bad input (do not retry) from an I/O hiccup (retry).
"""


class FaxflowError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    kind = "error"


class ConfigError(FaxflowError):
    """An invalid campaign file or trigger parameter. Carries one line per problem."""

    exit_code = 2
    kind = "config"

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class BadInputError(FaxflowError):
    """An input file (instructions, data table, raw data) that cannot be used."""

    exit_code = 3
    kind = "bad_input"


class EngineError(FaxflowError):
    """The simulation/processing engine failed on valid input."""

    exit_code = 4
    kind = "engine"


class StorageError(FaxflowError):
    """Reading or writing outputs failed (disk full, permissions, vanished files)."""

    exit_code = 5
    kind = "io"


class ValidationFailure(FaxflowError):
    """A step finished but its output does not pass the self-checks (events in != out)."""

    exit_code = 6
    kind = "validation"


EXIT_CODES = {cls.kind: cls.exit_code for cls in (FaxflowError, ConfigError, BadInputError,
                                                  EngineError, StorageError, ValidationFailure)}
