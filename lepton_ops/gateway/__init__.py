"""The one gateway to Ansible: playbooks run through ansible-runner, results come back typed."""

from lepton_ops.gateway.results import HostResult, HostStatus, PlaybookResult
from lepton_ops.gateway.runner import PlaybookRun, run_playbook

__all__ = ["HostResult", "HostStatus", "PlaybookResult", "PlaybookRun", "run_playbook"]
