-- Token buckets (Signal-Server's validate_rate_limit.lua shape), timed by Redis's own clock.
-- Takes `cost` tokens from every bucket when each holds them; otherwise takes nothing from any.
-- Returns {1, 0, 0, left_1, left_2, ...} when allowed (the whole tokens each bucket holds after the
-- take: what lets a process lend a client tokens before it asks, delivery/limits.py), {0,
-- retry_after_ms, i} when bucket i (1-based) refused (ms until its `cost` tokens are back). Each hash {tokens, at} refills by elapsed time; PEXPIRE is the time
-- to refill completely, so an idle bucket disappears (a missing bucket is a full one) and no state
-- is kept for idle subjects. Several buckets in one call need one Redis server (a cluster client
-- takes them one call each: their keys hash to different slots).

-- KEYS[i]          hash: tokens (may hold a fraction), at (ms, Redis TIME)
-- ARGV[3i-2]       [number] most tokens bucket i holds (the burst)
-- ARGV[3i-1]       [number] tokens refilled per millisecond
-- ARGV[3i]         [number] tokens this request takes from bucket i

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local left = {}
for i, key in ipairs(KEYS) do
    local capacity = tonumber(ARGV[3 * i - 2])
    local perMs = tonumber(ARGV[3 * i - 1])
    local cost = tonumber(ARGV[3 * i])
    local state = redis.call('HMGET', key, 'tokens', 'at')
    local tokens = tonumber(state[1])
    local at = tonumber(state[2])
    if tokens == nil or at == nil then
        tokens = capacity
    else
        tokens = math.min(capacity, tokens + math.max(0, now - at) * perMs)
    end
    if tokens < cost then
        return {0, math.ceil((cost - tokens) / perMs), i}
    end
    left[i] = tokens - cost
end

for i, key in ipairs(KEYS) do
    local capacity = tonumber(ARGV[3 * i - 2])
    local perMs = tonumber(ARGV[3 * i - 1])
    redis.call('HSET', key, 'tokens', tostring(left[i]), 'at', tostring(now))
    redis.call('PEXPIRE', key, math.max(1, math.ceil((capacity - left[i]) / perMs)))
end
local reply = {1, 0, 0}
for i = 1, #KEYS do
    reply[3 + i] = math.floor(left[i])
end
return reply
