"""Job kinds own their options, as docs/jobs.md ("Adding a job kind") says: a kind's module
(in the kinds package, or a package's entry point) is all it takes for ``job run`` to take
its parameters - shown in ``--help``, checked by the kind - and ``job run --help`` loads the
kinds without importing anything heavy."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from cli.test_tree import imported_after

from lepton_ops.cli.app import main
from lepton_ops.jobs import kinds as registry
from lepton_ops.jobs.client import job_inputs
from lepton_ops.jobs.kinds import ENTRY_POINT_GROUP, builtin_kinds, get_kind, known_kinds

ROOT = Path(__file__).resolve().parents[3]

KIND_MODULE = """
from lepton_ops.jobs.kinds.base import JobKind, Param, Partial, exact_int, partial_fields


class HistogramKind(JobKind):
    name = "histogram"
    summary = "Counts tasks into bins."
    params = (Param("bins", "int", "How many bins.", default=10, minimum=1, maximum=1000),)

    def empty(self) -> Partial:
        return {"n": 0}

    def check_partial(self, partial):
        partial_fields(self.name, partial, ("n",))
        return {"n": exact_int(self.name, "n", partial["n"])}

    def _map(self, params, start, stop, speed):
        return {"n": stop - start}

    def _reduce(self, a, b):
        return {"n": a["n"] + b["n"]}

    def _finalize(self, partial):
        return {"n": partial["n"]}
"""


def help_text(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main(["job", "run", "--help"])
    assert done.value.code in (0, None)
    return " ".join(capsys.readouterr().out.split())


def test_the_entry_points_name_the_kinds_packages_modules() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert {name: value.partition(":")[0] for name, value in declared.items()} == builtin_kinds()
    for name, value in declared.items():
        assert type(get_kind(name)).__name__ == value.partition(":")[2]


def test_job_run_help_loads_every_kind_and_nothing_heavy() -> None:
    # the command's module may import rich (its tables), as for every command's help
    assert [name for name in imported_after("job", "run", "--help") if name != "rich"] == []


def test_a_kind_module_in_the_kinds_package_is_a_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "histogram.py").write_text(KIND_MODULE, encoding="utf-8")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "entry_points", lambda group: [])  # a checkout not installed
    assert "histogram" in known_kinds()
    shown = help_text(capsys)
    assert "--bins N How many bins (histogram; default 10, 1 to 1000)." in shown
    assert "The job kind: histogram, mean, pi, predict, sleep," in shown


def test_a_kind_a_package_registers_takes_its_options_on_job_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lepton_histogram_plugin.py").write_text(KIND_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry.entry_points(group=ENTRY_POINT_GROUP)
    plugin = EntryPoint("histogram", "lepton_histogram_plugin:HistogramKind", ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real, plugin])
    assert "--bins N How many bins (histogram; default 10, 1 to 1000)." in help_text(capsys)
    assert job_inputs("histogram", {"bins": "7"}, {}, 3).params == {"bins": 7}
    # The option reaches the kind, which checks it (before anything is sent).
    with pytest.raises(SystemExit) as refused:
        main(["job", "run", "--kind", "histogram", "--tasks", "3", "--bins", "0",
              "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert refused.value.code == 2
    assert "--bins must be 1 or more, got 0" in capsys.readouterr().err
    # Another kind does not take it.
    with pytest.raises(SystemExit):
        main(["job", "run", "--kind", "mean", "--tasks", "3", "--bins", "4",
              "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert "job kind mean does not take --bins" in capsys.readouterr().err
