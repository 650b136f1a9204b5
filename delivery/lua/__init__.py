"""Lua scripts of delivery.queue, one per atomic operation (a package so wheels ship them)."""
