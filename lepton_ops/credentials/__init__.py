"""The controller's credentials: the fleet's bearer tokens and its TLS CA and certificates.

A leaf package: it imports nothing from lepton_ops but errors and settings, so every
other package (deploy, jobs, telemetry, services, remediate) can use it.
"""
