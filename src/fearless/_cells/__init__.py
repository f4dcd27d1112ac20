"""Cells: thread-safe values, counters, and a concurrent queue and stack."""
