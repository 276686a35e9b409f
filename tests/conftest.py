"""Suite-wide set-up: every test, and every process a test starts, shares one kernel cache.

It is the one ``make install`` warms (the default output root's), so the suite does not compile
the builtin engine's kernels again; ``FAXFLOW_KERNEL_CACHE`` set by the caller wins.
"""

import os
from pathlib import Path

os.environ.setdefault("FAXFLOW_KERNEL_CACHE", str(Path(__file__).resolve().parents[1] / "runs" / ".cache" / "kernels"))
