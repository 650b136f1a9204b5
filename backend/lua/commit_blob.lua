-- Commits an uploaded blob: moves its chunks from the upload's keys to the blob's and records it,
-- if the blob is not stored already (then the upload is dropped: one copy per account) and the
-- account's quota holds it. The upload's chunk keys expire on their own if this never runs.
-- Returns {'stored', size}, {'exists', size} or {'quota', bytes used}.

local metaKey  = KEYS[1] -- hash:   size, chunks, digests (JSON list of per-chunk sha256 hex), stored_at
local usageKey = KEYS[2] -- string: bytes the account keeps
-- KEYS[3 .. 2+n]: the upload's chunk keys; KEYS[3+n .. 2+2n]: the blob's chunk keys
local size     = tonumber(ARGV[1])  -- [integer] bytes
local digests  = ARGV[2]            -- [string]  JSON list of each chunk's sha256 hex
local now      = ARGV[3]            -- [integer] caller's clock, ms
local quota    = tonumber(ARGV[4])  -- [integer] bytes the account may keep

local n = (#KEYS - 2) / 2
if redis.call('EXISTS', metaKey) == 1 then
    for i = 1, n do
        redis.call('DEL', KEYS[2 + i])
    end
    return {'exists', redis.call('HGET', metaKey, 'size')}
end
local used = tonumber(redis.call('GET', usageKey) or '0')
if used + size > quota then
    for i = 1, n do
        redis.call('DEL', KEYS[2 + i])
    end
    return {'quota', tostring(used)}
end
for i = 1, n do
    redis.call('RENAME', KEYS[2 + i], KEYS[2 + n + i])
    redis.call('PERSIST', KEYS[2 + n + i])
end
redis.call('HSET', metaKey, 'size', size, 'chunks', n, 'digests', digests, 'stored_at', now)
redis.call('INCRBY', usageKey, size)
return {'stored', tostring(size)}
