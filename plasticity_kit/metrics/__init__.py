"""Metric plugins and the :class:`Metric` contract."""
from .base import Metric, MetricContext, MetricUnavailable

__all__ = ["Metric", "MetricContext", "MetricUnavailable"]
