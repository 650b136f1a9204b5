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
local skipMax   = tonumber(ARGV[6]) or 0 -- [integer] most rows this device acknowledged that do
                                          -- not count against `limit` (scanned beyond it)

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local min = '-inf'
if after ~= '' then
    min = '(' .. after
end

-- One extra row tells whether another page follows; rows this device acknowledged add up to
-- skipMax more, so a device whose oldest messages another device still holds sees past them.
local rows = redis.call('ZRANGEBYSCORE', queueKey, min, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1 + skipMax)
local total = #rows / 2

local out = {''}
local bytes, counted, skipped, last = 0, 0, 0, 0
local full = false
for i = 1, total do
    if counted == limit then
        break
    end
    local id = rows[2 * i - 1]
    local expiresAt = redis.call('ZSCORE', expiryKey, id)
    counted = counted + 1
    if expiresAt and device ~= '' and string.find(redis.call('HGET', seenKey, id) or '', ',' .. device .. ',', 1, true) then
        expiresAt = nil -- this device has it already
        if skipped < skipMax then
            skipped = skipped + 1
            counted = counted - 1
        end
    end
    if expiresAt and tonumber(expiresAt) > now then
        local size = redis.call('HSTRLEN', msgKey, id)
        if maxBytes > 0 and #out > 1 and bytes + size > maxBytes then
            -- Full: the page ends after the previous row, which the cursor points at.
            out[1] = rows[2 * (i - 1)]
            full = true
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
    last = i
end
if not full and last < total then
    out[1] = rows[2 * last]
end

return out
