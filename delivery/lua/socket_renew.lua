-- Renews the leases of sockets still connected to this process (see socket_slot.lua).
-- Returns how many leases were renewed (a lease that already ran out is not revived).

local key   = KEYS[1]            -- zset: socket id -> lease expiry (ms, Redis TIME)
local lease = tonumber(ARGV[1])  -- [integer] lease length, ms
-- ARGV[2..n] [string] socket ids

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = 0
for i = 2, #ARGV do
    -- Counted by presence, not by ZADD CH: a lease renewed within the millisecond it was taken
    -- keeps its score, and CH would not count it.
    if redis.call('ZSCORE', key, ARGV[i]) then
        redis.call('ZADD', key, 'XX', now + lease, ARGV[i])
        renewed = renewed + 1
    end
end
if renewed > 0 then
    redis.call('PEXPIRE', key, lease)
end
return renewed
