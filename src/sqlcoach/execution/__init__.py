"""Running untrusted SQL and comparing results.

* ``sandbox``: one query, read-only, with a deadline and caps (``execute``, ``execute_on_copy``).
* ``pool``: many queries in long-lived worker processes with a hard kill and a cache.
* ``compare``: the one ``same_result`` used by metrics and rewards alike.

Importing this package is cheap (standard library only).
"""

from sqlcoach.execution.compare import COMPARE_MODES, same_result
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits, execute, execute_on_copy

__all__ = ["COMPARE_MODES", "ExecutorPool", "Limits", "execute", "execute_on_copy", "same_result"]
