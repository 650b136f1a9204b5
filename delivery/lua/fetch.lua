-- Reads one page of an account's queue, oldest first, skipping expired messages. Writes nothing.
-- Returns {next, id1, seq1, expires1, record1, id2, ...}: next is the receive sequence of the last
-- message scanned (pass it as `after` for the next page), or "" when the queue ends in this page.
-- A page stops before the record that would take it past max_bytes (it always holds at least one).
-- For a device (ARGV[5]), messages that device has acknowledged (KEYS[5], ack.lua) are skipped.

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local after     = ARGV[1] -- [integer or ""] page starts after this receive sequence; "" = start
local now       = tonumber(ARGV[2]) -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local limit     = tonumber(ARGV[3]) -- [integer] most messages scanned for this page
local maxBytes  = tonumber(ARGV[4]) -- [integer] most record bytes in this page, 0 = no limit
local seenKey   = KEYS[5] -- hash: message id -> ",<device>,…,": devices that acked it (ack.lua)
local device    = ARGV[5] -- [string] the fetching device's id, "" = none (the account has no list)

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

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

local bytes = 0
for i = 1, scanned do
    local id = rows[2 * i - 1]
    local expiresAt = redis.call('ZSCORE', expiryKey, id)
    if expiresAt and device ~= '' and string.find(redis.call('HGET', seenKey, id) or '', ',' .. device .. ',', 1, true) then
        expiresAt = nil -- this device has it already
    end
    if expiresAt and tonumber(expiresAt) > now then
        local size = redis.call('HSTRLEN', msgKey, id)
        if maxBytes > 0 and #out > 1 and bytes + size > maxBytes then
            -- Full: the page ends after the previous row, which the cursor points at.
            out[1] = rows[2 * (i - 1)]
            break
        end
        local record = redis.call('HGET', msgKey, id)
        if record then
            bytes = bytes + size
            out[#out + 1] = id
            out[#out + 1] = rows[2 * i]
            out[#out + 1] = expiresAt
            out[#out + 1] = record
        end
    end
end

return out
