"""The providers' APIs: one package each, with its client, its vocabulary and its signatures."""
