"""Failure classes shared by the CLI, the pipeline runner and the Airflow layer.

Each class carries the exit code ``faxflow`` uses for it and its retry decision, in one place
(docs/reliability.md): a bad config, input or validation fails again, so it is never retried; an
engine or I/O failure may pass on another try; running out of memory is retried only with more.
"""

NEVER = "never"
SAME = "same"
MORE_MEMORY = "more_memory"


class FaxflowError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with, ``retry`` what a scheduler should do."""

    exit_code = 1
    kind = "error"
    label = "unexpected"
    retry = SAME

    @classmethod
    def retryable(cls) -> bool:
        return cls.retry != NEVER


class ConfigError(FaxflowError):
    """An invalid campaign file or trigger parameter. Carries one line per problem."""

    exit_code = 2
    kind = "config"
    label = "configuration"
    retry = NEVER

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class BadInputError(FaxflowError):
    """An input file (instructions, data table, raw data, manifest) that cannot be used."""

    exit_code = 3
    kind = "bad_input"
    label = "bad input"
    retry = NEVER


class EngineError(FaxflowError):
    """The simulation/processing engine failed on valid input."""

    exit_code = 4
    kind = "engine"
    label = "engine"


class StorageError(FaxflowError):
    """Reading or writing outputs failed (disk full, permissions, vanished files): every OSError."""

    exit_code = 5
    kind = "io"
    label = "I/O"


class ValidationFailure(FaxflowError):
    """A step finished but its output does not pass the self-checks (events in != out)."""

    exit_code = 6
    kind = "validation"
    label = "validation"
    retry = NEVER


class ResourceError(FaxflowError):
    """The process ran out of memory (MemoryError): worth another try only with more memory."""

    exit_code = 7
    kind = "resource"
    label = "out of memory"
    retry = MORE_MEMORY


FAILURE_CLASSES = (FaxflowError, ConfigError, BadInputError, EngineError, StorageError, ValidationFailure,
                   ResourceError)
EXIT_CODES = {cls.kind: cls.exit_code for cls in FAILURE_CLASSES}
#: Kinds whose failures a retry of the same job may cure (a group reports these first).
RETRYABLE_KINDS = tuple(cls.kind for cls in FAILURE_CLASSES if cls.retryable())


def failure_class(exit_code: int | None) -> type[FaxflowError] | None:
    """The class a faxflow exit code stands for, or None for 0, unknown codes and signals."""
    return next((cls for cls in FAILURE_CLASSES if cls.exit_code == exit_code and cls is not FaxflowError), None)


def classify(error: BaseException) -> FaxflowError:
    """Any exception as a failure class: OSError → I/O, MemoryError → resource, the rest → engine."""
    if isinstance(error, FaxflowError):
        return error
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, OSError):
        return StorageError(message)
    if isinstance(error, MemoryError):
        return ResourceError(f"MemoryError: out of memory {error}".rstrip())
    return EngineError(message)
