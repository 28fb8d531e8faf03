"""A sample shop checkout for decline-rescue: a Microform card form (Cybersource's, or the
local emulator's) whose transient token the shop's server verifies through the API.

``python -m examples.checkout --help``; README.md beside this file.
"""
