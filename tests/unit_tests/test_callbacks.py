"""The deprecated ``langchain_hybrid.callbacks`` module: 0.2 imports still work, with a warning.

The monitoring tests themselves live in test_metrics.py, test_health.py and test_exporters.py.
"""

from __future__ import annotations

import importlib

import pytest

import langchain_hybrid
from langchain_hybrid import callbacks

OLD_IMPORTS = {  # every public name the 0.2 module had, and its new home
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


@pytest.mark.parametrize(("name", "module"), sorted(OLD_IMPORTS.items()))
def test_a_0_2_import_warns_and_gives_the_moved_object(name: str, module: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"import {name} from langchain_hybrid\.{module}"):
        old = getattr(callbacks, name)
    assert old is getattr(importlib.import_module(f"langchain_hybrid.{module}"), name)
    if name in langchain_hybrid.__all__:
        assert old is getattr(langchain_hybrid, name)


def test_from_import_statement_works_and_unknown_names_fail() -> None:
    with pytest.warns(DeprecationWarning, match="langchain_hybrid.callbacks is deprecated"):
        from langchain_hybrid.callbacks import HealthMonitor  # noqa: PLC0415
    assert HealthMonitor is langchain_hybrid.HealthMonitor
    with pytest.raises(AttributeError, match="no attribute 'HybridRetriever'"):
        callbacks.HybridRetriever  # noqa: B018 - the attribute access is the test
    assert sorted(dir(callbacks)) == sorted(OLD_IMPORTS)
