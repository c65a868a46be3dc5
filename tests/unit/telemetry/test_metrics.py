"""Prometheus's text format as coderouterd writes it, read back by Prometheus's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from coderouterd.telemetry.metrics import BUCKETS, Exposition, Histogram


def test_label_values_are_escaped_and_histograms_are_cumulative() -> None:
    h = Histogram()
    for seconds in (0.01, 0.05, 0.3, 400.0):
        h.observe(seconds)
    out = Exposition()
    odd = 'a "quoted"\\ name\nwith a newline'
    out.counter("things", "Things, with a \\ in the help.", [({"name": odd}, 3)])
    out.gauge("ratio", "A float.", [({}, 0.25)])
    out.histogram("wait_seconds", "Waits.", "provider", {"p": h})
    families = {f.name: f for f in text_string_to_metric_families(out.text())}
    [thing] = families["coderouterd_things"].samples
    assert thing.labels == {"name": odd} and thing.value == 3
    assert families["coderouterd_ratio"].samples[0].value == 0.25
    buckets = {
        s.labels["le"]: s.value
        for s in families["coderouterd_wait_seconds"].samples
        if s.name.endswith("_bucket")
    }
    # 0.05 is in the 0.05 bucket (le: at or below); 400 only in +Inf.
    assert buckets["0.05"] == 2 and buckets["0.5"] == 3 and buckets["300.0"] == 3
    assert buckets["+Inf"] == 4 and len(buckets) == len(BUCKETS) + 1
    count = next(
        s for s in families["coderouterd_wait_seconds"].samples if s.name.endswith("_count")
    )
    assert count.value == 4
