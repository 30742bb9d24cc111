"""Scraping a real process's metrics and reading them with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    """The sample names present."""
    return {name for name, _ in samples}


def labels_of(samples: Samples, name: str) -> list[Mapping[str, str]]:
    """The label sets of one sample name."""
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


async def scrape(url: str, headers: Mapping[str, str] | None = None) -> Samples:
    """GET `url` (a /metrics page), expecting 200 and the Prometheus text format."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        response = await http.get(url, headers=dict(headers or {}))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return parse(response.text)
