-- Reads one message of an account's queue by id. Writes nothing.
-- Returns {expires_at, record} when the id is queued and not expired, else nil.

local queueKey  = KEYS[1] -- zset: message id -> receive sequence (unused; KEYS as every script)
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local id        = ARGV[1] -- [string] message id
local now       = tonumber(ARGV[2]) -- [number or ""] the caller's clock, seconds; "" = Redis TIME

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local expiresAt = redis.call('ZSCORE', expiryKey, id)
if not expiresAt or tonumber(expiresAt) <= now then
    return nil
end
local record = redis.call('HGET', msgKey, id)
if not record then
    return nil
end
return {expiresAt, record}
