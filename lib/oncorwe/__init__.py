"""oncorwe: a reproducible research platform for oncology real-world evidence."""

import os as _os

# XGBoost's OpenMP threads spin while they wait by default; on a busy machine (two cores
# shared with a notebook kernel or a test run) that made a 2-thread fit up to 100x slower
# than a 1-thread one. Passive waiting removes the stall. It must be set before libgomp
# loads, i.e. before xgboost is imported, which every oncorwe module does after this.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
