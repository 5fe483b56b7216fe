"""The job's gauges through Ray's metrics (``ray.util.metrics``), so Prometheus scrapes them from Ray.

Ray serves every process's metrics on each node's metrics endpoint (the
head's is in ``ray metrics launch-prometheus``' service discovery file), and
its Grafana setup reads them from Prometheus; ``docs/grafana/tfray.json`` is
a dashboard of them. Ray prefixes each name with ``ray_`` (``ray_tfray_step``).
"""

from __future__ import annotations

from controller.report.gauges import METRICS, Sample


class RayGauges:
    """An exporter for ``controller.report.gauges.JobGauges``: one Ray Gauge per metric, made on first use."""

    def __init__(self):
        self._gauges: dict = {}

    def __call__(self, samples: list[Sample]) -> None:
        from ray.util.metrics import Gauge

        for sample in samples:
            gauge = self._gauges.get(sample.name)
            if gauge is None:
                description, tag_keys = METRICS[sample.name]
                gauge = self._gauges[sample.name] = Gauge(sample.name, description=description, tag_keys=tag_keys)
            gauge.set(float(sample.value), tags=sample.tags)
