"""The lepton services: the worker and the aggregator (Flask apps, run under gunicorn).

- :mod:`lepton_ops.services.worker` - ``create_worker_app``: runs one shard of a job.
- :mod:`lepton_ops.services.aggregator` - ``create_aggregator_app``: owns jobs, sends
  their shards to the workers (:mod:`~lepton_ops.services.dispatcher`), reduces the
  results; configured by :mod:`~lepton_ops.services.aggregator_config`.
- :mod:`lepton_ops.services.job_store` - the aggregator's SQLite store.

What both services share:

- :mod:`~lepton_ops.services.base_app` - ``create_base_app``: auth, JSON errors,
  ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus), ``/openapi.json``;
- :mod:`~lepton_ops.services.service_state` - what an app keeps about itself;
- :mod:`~lepton_ops.services.auth` - the bearer token: its file and the header check;
- :mod:`~lepton_ops.services.bodies` - reading and checking JSON bodies against their
  pydantic models, JSON errors; each app's own bodies are in
  :mod:`~lepton_ops.services.worker_bodies` and :mod:`~lepton_ops.services.aggregator_bodies`;
- :mod:`~lepton_ops.services.artifacts` - job artifacts: digest-checked uploads, the
  worker's cache, and how the aggregator hands them to the workers;
- :mod:`~lepton_ops.services.metrics` - the Prometheus metrics;
- :mod:`~lepton_ops.services.openapi` - ``@documented`` routes, and the OpenAPI document
  generated from them and their body models;
- :mod:`~lepton_ops.services.config_files` - config files and their checked values.
"""
