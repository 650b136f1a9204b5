-- Reads one page of an account's queue, oldest first, skipping expired messages. Writes nothing.
-- Returns {next, id1, seq1, expires1, record1, id2, ...}: next is the receive sequence of the last
-- message scanned (pass it as `after` for the next page), or "" when the queue ends in this page.

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at> <envelope bytes>"
local after     = ARGV[1] -- [integer or ""] page starts after this receive sequence; "" = start
local now       = tonumber(ARGV[2]) -- [number] caller's clock, seconds
local limit     = tonumber(ARGV[3]) -- [integer] most messages scanned for this page

local min = '-inf'
if after ~= '' then
    min = '(' .. after
end

-- One extra row tells whether another page follows.
local rows = redis.call('ZRANGEBYSCORE', queueKey, min, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
local scanned = math.min(#rows / 2, limit)

local out = {''}
if #rows / 2 > limit then
    out[1] = rows[2 * limit]
end

for i = 1, scanned do
    local id = rows[2 * i - 1]
    local expiresAt = redis.call('ZSCORE', expiryKey, id)
    if expiresAt and tonumber(expiresAt) > now then
        local record = redis.call('HGET', msgKey, id)
        if record then
            out[#out + 1] = id
            out[#out + 1] = rows[2 * i]
            out[#out + 1] = expiresAt
            out[#out + 1] = record
        end
    end
end

return out
