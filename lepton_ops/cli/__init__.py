"""The ``lepton-ops`` command line: thin commands over the library."""
