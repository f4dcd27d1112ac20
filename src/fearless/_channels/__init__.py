"""Channels: the core channel, fan-in and fan-out, and the anyio drop-in factory."""
