"""The payments rules and types, pure: no AWS, no HTTP, no settings. Statuses and the
state machine, order updates and changes, the /evaluate contract, eligibility, card-data
detection, the capturable fields. Everything here is testable without a network."""
