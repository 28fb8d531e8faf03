"""FlexFactor: the OAuth2 API client, the status and webhook-event vocabulary, and the
webhook signature (verifier beside signer)."""
