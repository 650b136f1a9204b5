-- Reads an account hash. Writes nothing. A script only so that the read is pipelined with the
-- other script calls of concurrent requests (delivery.batching), as HGETALL through the client
-- is not. Returns the hash's fields and values, flat ({field, value, ...}; empty: no account).

local accountKey = KEYS[1] -- hash: the account

return redis.call('HGETALL', accountKey)
