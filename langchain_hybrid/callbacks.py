"""Deprecated: the 0.2 home of the monitoring classes, kept so that 0.2 imports keep working.

Monitoring now lives in three modules, one job each:

* :mod:`langchain_hybrid.metrics`: :class:`RetrievalMetricsHandler` (the callback handler);
* :mod:`langchain_hybrid.health`: :class:`HealthMonitor`, :class:`HealthStatus`,
  :class:`HealthCheck`;
* :mod:`langchain_hybrid.exporters`: Prometheus (:func:`serve_metrics`, :func:`to_prometheus`,
  :class:`PrometheusExporter`), :func:`log_snapshot` and :class:`OTelRetrievalHandler`.

The user-facing names are also exported by the package itself
(``from langchain_hybrid import HealthMonitor, RetrievalMetricsHandler, serve_metrics``). A name
read from this module is forwarded to its new home with a :class:`DeprecationWarning`; the
module goes in a later release.
"""

from __future__ import annotations

import importlib
import warnings

_MOVED = {
    "ALL": "metrics",
    "LATENCY_BUCKETS_SECONDS": "metrics",
    "MAX_LEGS": "metrics",
    "OTHER": "metrics",
    "RetrievalMetricsHandler": "metrics",
    "window_stats": "metrics",
    "CheckStatus": "health",
    "HealthCheck": "health",
    "HealthMonitor": "health",
    "HealthRule": "health",
    "HealthStatus": "health",
    "Status": "health",
    "MetricsServer": "exporters",
    "OTelRetrievalHandler": "exporters",
    "PrometheusExporter": "exporters",
    "log_snapshot": "exporters",
    "serve_metrics": "exporters",
    "to_prometheus": "exporters",
}


def __getattr__(name: str) -> object:
    """Forward a moved name to its new module, with a ``DeprecationWarning``."""
    module = _MOVED.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    warnings.warn(
        f"langchain_hybrid.callbacks is deprecated: import {name} from "
        f"langchain_hybrid.{module} (or from langchain_hybrid)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"langchain_hybrid.{module}"), name)


def __dir__() -> list[str]:
    """The moved names (for tab completion)."""
    return sorted(_MOVED)
