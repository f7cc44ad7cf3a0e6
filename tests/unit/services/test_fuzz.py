"""CI's fuzz run: schemathesis against the worker and the aggregator, in-process (WSGI).

Positive and negative cases for every operation of each app's OpenAPI document, with the
token and without it; any 5xx, undocumented status code, content type or body fails the
test. Sized for CI: about a minute on two cores (``benchmarks/fuzz.py`` runs the nightly
size, 1,000 cases per operation and mode).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from fuzz_support import close_apps, fuzz_app, service_apps

#: Cases per operation and mode with the token, and without it (CI-sized).
EXAMPLES = 80
EXAMPLES_WITHOUT_TOKEN = 15


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Flask]]:
    made = service_apps(tmp_path_factory.mktemp("fuzz"))
    yield made
    close_apps(made)


@pytest.mark.fuzz
@pytest.mark.parametrize("service", ["worker", "aggregator"])
@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    apps: dict[str, Flask], service: str, with_token: bool
) -> None:
    examples = EXAMPLES if with_token else EXAMPLES_WITHOUT_TOKEN
    report = fuzz_app(apps[service], examples, with_token=with_token, derandomize=True)
    assert report.failures == []
    # Every documented operation was exercised, in both modes where it has inputs.
    positive = [name for name in report.cases if name.endswith(" positive")]
    assert len(positive) >= (6 if service == "worker" else 12)
    assert all(report.cases[name] >= 1 for name in positive)
    assert report.total >= len(positive) * min(examples, 10)
