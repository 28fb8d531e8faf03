"""One module per job: declines, the order writer, webhook intake, polling, merchant
actions, capture contexts, order events. A service takes its input from a handler, applies
the domain's rules and calls infrastructure and provider clients built by ``runtime.wiring``."""
