"""Deploy the lepton services (aggregator and workers) behind a shared bearer token."""
