-- One token bucket (Signal-Server's validate_rate_limit.lua shape), timed by Redis's own clock.
-- Takes `cost` tokens when the bucket holds them; otherwise takes nothing.
-- Returns {1, 0} when allowed, {0, retry_after_ms} when refused (ms until `cost` tokens are back).
-- The hash {tokens, at} refills by elapsed time; PEXPIRE is the time to refill completely, so an
-- idle bucket disappears (a missing bucket is a full one) and no state is kept for idle subjects.

local key      = KEYS[1]             -- hash: tokens (may hold a fraction), at (ms, Redis TIME)
local capacity = tonumber(ARGV[1])   -- [number] most tokens the bucket holds (the burst)
local perMs    = tonumber(ARGV[2])   -- [number] tokens refilled per millisecond
local cost     = tonumber(ARGV[3])   -- [number] tokens this request takes

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
    tokens = capacity
else
    tokens = math.min(capacity, tokens + math.max(0, now - at) * perMs)
end

if tokens < cost then
    return {0, math.ceil((cost - tokens) / perMs)}
end
tokens = tokens - cost
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.max(1, math.ceil((capacity - tokens) / perMs)))
return {1, 0}
