"""Provisioning: a wheelhouse built once on the controller, installed on every node."""
