"""Lua scripts of the profile backend, one per atomic operation (a package so wheels ship them).

Each file's header says what it does and returns, then one line per ``KEYS[i]`` / ``ARGV[i]``.
They are read with :func:`ensign.redis_client.lua_script`.
"""
