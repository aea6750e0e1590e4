"""Shared kernel: money, ids, clock, errors and limits used by every context. Pure, no I/O."""
