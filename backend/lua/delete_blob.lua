-- Deletes a stored blob and gives its bytes back to the account's quota.
-- Returns 'deleted' or 'missing'.

local metaKey  = KEYS[1] -- hash:   the blob's size, chunks, digests, stored_at
local usageKey = KEYS[2] -- string: bytes the account keeps
-- KEYS[3..]: the blob's chunk keys (the caller read their count from the meta hash)

local size = redis.call('HGET', metaKey, 'size')
if not size then
    return 'missing'
end
if tonumber(redis.call('HGET', metaKey, 'chunks')) ~= #KEYS - 2 then
    return 'moved'
end
for i = 3, #KEYS do
    redis.call('DEL', KEYS[i])
end
redis.call('DEL', metaKey)
redis.call('DECRBY', usageKey, tonumber(size))
return 'deleted'
