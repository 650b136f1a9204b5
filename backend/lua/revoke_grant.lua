-- Revokes a grant: removes it and remembers its id so the signed grant cannot be stored again.
-- Returns 'revoked', or 'moved' when the index no longer names this reader (the caller re-reads).

local indexKey   = KEYS[1] -- hash: grant id -> reader address
local readerKey  = KEYS[2] -- hash: grant id -> grant JSON, for one reader
local revokedKey = KEYS[3] -- set:  ids of revoked grants
local id         = ARGV[1] -- [string] grant id
local reader     = ARGV[2] -- [string] reader address the caller read from the index, '' for none

local current = redis.call('HGET', indexKey, id)
if (current or '') ~= reader then
    return 'moved'
end
redis.call('HDEL', indexKey, id)
redis.call('HDEL', readerKey, id)
redis.call('SADD', revokedKey, id)
return 'revoked'
