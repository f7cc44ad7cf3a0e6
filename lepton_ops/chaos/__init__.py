"""Chaos in the lab: real faults on the lab's nodes, recorded as the predictor's labels."""

from lepton_ops.chaos.controller import Chaos
from lepton_ops.chaos.faults import FaultKind, FaultSpec

__all__ = ["Chaos", "FaultKind", "FaultSpec"]
