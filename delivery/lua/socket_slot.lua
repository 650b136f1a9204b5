-- Takes one socket slot in a set of leases (account or client address), timed by Redis's clock.
-- Returns 1 when taken (or already held by this socket), 0 when `cap` live leases are held.
-- A lease is a zset member (the socket id) scored with its expiry; the process holding the socket
-- renews it, so the slots of a process that died free themselves when their leases run out.

local key   = KEYS[1]            -- zset: socket id -> lease expiry (ms, Redis TIME)
local sid   = ARGV[1]            -- [string]  the socket's id (process-unique prefix + sid)
local cap   = tonumber(ARGV[2])  -- [integer] most live leases
local lease = tonumber(ARGV[3])  -- [integer] lease length, ms

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, sid) and redis.call('ZCARD', key) >= cap then
    return 0
end
redis.call('ZADD', key, now + lease, sid)
redis.call('PEXPIRE', key, lease)
return 1
