"""Cybersource Flex API v2: the capture-context client and HTTP Signature authentication."""
