"""What every backend shares: its construction, closing, and reading JSON through ``read_bytes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from faxflow.config import CLUSTER_DEFAULTS

#: Largest JSON file (group or variant summary) read back from a job's outputs.
MAX_JSON_BYTES = 4 * 1024 * 1024


class Backend:
    """Base of the backends of :mod:`faxflow.backends` (the interface is documented there).

    :param cluster: the variant's (or campaign's) cluster settings; missing keys take their defaults
    :param plan_info: the plan task's output, for tasks after the plan
    :param operator: the group operator, for a group task (gives ``spec`` and the wait settings)
    """

    name = ""
    location = "local"

    def __init__(self, cluster: dict, *, plan_info: Optional[dict] = None, operator: Any = None):
        self.cluster = {**CLUSTER_DEFAULTS, **cluster}
        self.plan_info = plan_info or {}
        self.op = operator
        self.spec = getattr(operator, "spec", None)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def find_live(self) -> Optional[str]:
        return None

    @staticmethod
    def job_hints(job: dict) -> list[str]:
        return []

    @staticmethod
    def planned_output_root(cluster: dict, local_root: str) -> str:
        return str(Path(local_root).resolve())

    def read_bytes(self, path: str, max_bytes: int = MAX_JSON_BYTES) -> Optional[bytes]:
        raise NotImplementedError

    def read_json(self, path: str) -> Optional[dict]:
        data = self.read_bytes(path, MAX_JSON_BYTES)
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None
