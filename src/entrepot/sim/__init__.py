"""Simulations: scenarios that build a network and drive activity through the services.

Each is deterministic for its seed (randomness from ``random.Random(seed)``, time from an
injected clock) and checks the invariants of what it drove. The CLI only calls them.
"""
