"""The local stack: moto, provider emulators, a local API gateway and Lambda runtimes.

Local tooling only: nothing here is deployed, and nothing deployed imports it.
"""
