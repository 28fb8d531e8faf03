"""What a Lambda execution environment needs around the services: settings, the wiring of
lazily built clients (one ``reset``), the API router, batch answers, observability, the
invocation deadline, cold-start housekeeping."""
