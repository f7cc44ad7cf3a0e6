"""Provisioning: the wheelhouse the controller builds once, and the run that installs it on nodes."""
