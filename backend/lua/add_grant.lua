-- Stores a verified grant, unless it was revoked before (a revoked grant cannot be re-uploaded) or
-- the owner holds maxGrants grants already.
-- Returns 'added', 'unchanged', 'revoked' or 'limit'.

local indexKey   = KEYS[1] -- hash: grant id -> reader address
local readerKey  = KEYS[2] -- hash: grant id -> grant JSON, for one reader
local revokedKey = KEYS[3] -- set:  ids of revoked grants
local id         = ARGV[1]            -- [string]  grant id
local reader     = ARGV[2]            -- [string]  reader address, lowercase hex
local json       = ARGV[3]            -- [string]  canonical JSON of the signed grant
local maxGrants  = tonumber(ARGV[4])  -- [integer] most grants one owner keeps

if redis.call('SISMEMBER', revokedKey, id) == 1 then
    return 'revoked'
end
if redis.call('HEXISTS', indexKey, id) == 1 then
    return 'unchanged'
end
if redis.call('HLEN', indexKey) >= maxGrants then
    return 'limit'
end
redis.call('HSET', indexKey, id, reader)
redis.call('HSET', readerKey, id, json)
return 'added'
