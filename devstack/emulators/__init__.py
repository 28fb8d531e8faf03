"""Provider emulators serving the documented endpoints over real HTTP on loopback."""
