"""Examples shown at the end of each command's help, by command path.

One place for all of them, so that a test can check that every command has some.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "lab": ("lepton-ops lab up", "lepton-ops lab status --json", "lepton-ops lab down --purge"),
    "lab up": (
        "lepton-ops lab up",
        "sudo lepton-ops lab up --mode ssh",
        "lepton-ops lab up --first-address 127.0.1.11 --insecure-http",
    ),
    "lab status": ("lepton-ops lab status", "lepton-ops lab status --json"),
    "lab down": ("lepton-ops lab down", "lepton-ops lab down --purge"),
    "provision": ("lepton-ops provision", "lepton-ops provision -i hosts.yml --limit node3"),
    "deploy": ("lepton-ops deploy", "lepton-ops deploy --check"),
    "job": (
        "lepton-ops job plan --tasks 1000",
        "lepton-ops job run --kind mean --tasks 200",
        "lepton-ops job list",
    ),
    "job plan": (
        "lepton-ops job plan --tasks 1000",
        "lepton-ops job plan --tasks 1000 --strategy equal",
        "lepton-ops job plan --tasks 100000 --task-ms 5 -i hosts.yml --json",
    ),
    "job run": (
        "lepton-ops job run --kind mean --tasks 200",
        "lepton-ops job run --kind sleep --tasks 500 --task-ms 20 --detach",
        "lepton-ops job run --kind predict --model model.skops --data rows.npy",
    ),
    "job watch": ("lepton-ops job watch 3f2c9a",),
    "job status": ("lepton-ops job status 3f2c9a", "lepton-ops job status 3f2c9a --json"),
    "job result": ("lepton-ops job result 3f2c9a --json",),
    "job list": ("lepton-ops job list", "lepton-ops job list --json"),
    "job cancel": ("lepton-ops job cancel 3f2c9a", "lepton-ops job cancel 3f2c9a --json"),
    "telemetry": (
        "lepton-ops telemetry collect",
        "lepton-ops telemetry show --since 10m",
        "lepton-ops telemetry export --format csv > telemetry.csv",
    ),
    "telemetry collect": ("lepton-ops telemetry collect", "lepton-ops telemetry collect -l node3"),
    "telemetry pull": (
        "lepton-ops telemetry pull",
        "lepton-ops telemetry pull --watch 5s",
        "lepton-ops telemetry pull --source prometheus --prometheus-url http://prom:9090",
    ),
    "telemetry show": (
        "lepton-ops telemetry show",
        "lepton-ops telemetry show --node node3 --since 10m",
        "lepton-ops telemetry show --metric lepton_node_mem_used_pct --json",
    ),
    "telemetry export": (
        "lepton-ops telemetry export --format csv > telemetry.csv",
        "lepton-ops telemetry export --format prometheus --since 5m",
    ),
    "telemetry prune": ("lepton-ops telemetry prune --older-than 30d",),
    "chaos": ("lepton-ops chaos inject node3 memleak", "lepton-ops chaos status"),
    "chaos inject": (
        "lepton-ops chaos inject node3 memleak --rate 8MiB/s",
        "lepton-ops chaos inject node2 kill",
    ),
    "chaos stop": ("lepton-ops chaos stop", "lepton-ops chaos stop node3"),
    "chaos status": ("lepton-ops chaos status --since 2h",),
    "chaos campaign": ("lepton-ops chaos campaign --runs 40 --seed 7",),
    "model": (
        "lepton-ops model install-starter",
        "lepton-ops model train",
        "lepton-ops model show",
    ),
    "model train": ("lepton-ops model train", "lepton-ops model train --since 24h --horizon 5m"),
    "model evaluate": ("lepton-ops model evaluate --since 7d --held-out 0.3",),
    "model show": ("lepton-ops model show", "lepton-ops model show --json"),
    "model install-starter": ("lepton-ops model install-starter",),
    "model score-csv": (
        "lepton-ops model score-csv cpu.csv > scored.csv",
        "lepton-ops model score-csv telemetry.csv -o scored.csv --json",
        "lepton-ops model score-csv metrics/ -o scored/",
    ),
    "model benchmark": (
        "python tools/make_detection_corpus.py corpus/ && lepton-ops model benchmark corpus/",
        "lepton-ops model benchmark lab-corpus/ --json",
    ),
    "model export-corpus": (
        "lepton-ops model export-corpus lab-corpus/ --since 1h",
        "lepton-ops model export-corpus lab-corpus/ --campaign campaign-20261205T120000",
    ),
    "predict": ("lepton-ops predict", "lepton-ops predict --node node3 --json"),
    "remediate": ("lepton-ops remediate --dry-run", "lepton-ops remediate --threshold 0.7"),
    "cycle": ("lepton-ops cycle", "lepton-ops cycle --dry-run --json"),
    "watch": ("lepton-ops watch --interval 10s", "lepton-ops watch --cycles 3"),
    "audit": ("lepton-ops audit", "lepton-ops audit --node node3 --since 7d"),
    "uncordon": ("lepton-ops uncordon node3",),
    "schedule": ("lepton-ops schedule install --every 5m", "lepton-ops schedule status"),
    "schedule install": ("lepton-ops schedule install --every 5m",),
    "schedule remove": ("lepton-ops schedule remove",),
    "schedule status": ("lepton-ops schedule status --json",),
    "status": ("lepton-ops status", "lepton-ops status --watch", "lepton-ops status --json"),
    "report": (
        "lepton-ops report",
        "lepton-ops report --since 2h --html report.html",
        "lepton-ops report --json",
    ),
    "demo": ("lepton-ops demo", "sudo lepton-ops demo --mode ssh"),
}
