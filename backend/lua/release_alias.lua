-- Takes an alias away from its owner, if the owner is still the address whose profile key
-- verified the release and the signed release was not used before. Refusals change nothing.
-- Returns 'released', 'not_owner' (the alias is free or held by another address now),
-- 'replayed' or 'stale_profile'.

local aliasKey    = KEYS[1] -- string: alias -> owner address (lowercase hex)
local aliasesKey  = KEYS[2] -- zset:   the owner's aliases -> claimed_at (ms)
local profileKey  = KEYS[3] -- hash:   the owner's profile; field 'hash' is compared
local usedKey     = KEYS[4] -- string: marks this signed release as used
local alias       = ARGV[1]            -- [string]  normalised alias
local address     = ARGV[2]            -- [string]  owner address, lowercase hex
local profileHash = ARGV[3]            -- [string]  content hash of the profile that verified the release
local usedTtl     = tonumber(ARGV[4])  -- [integer] ms to remember the release; 0 = for ever
local strict      = ARGV[5] == '1'     -- [0|1]     1: any reuse is a replay (timestamped form);
                                       --           0: reuse is refused only if it changes state (dm3 form)

if redis.call('HGET', profileKey, 'hash') ~= profileHash then
    return 'stale_profile'
end
if strict and redis.call('EXISTS', usedKey) == 1 then
    return 'replayed'
end
if redis.call('GET', aliasKey) ~= address then
    return 'not_owner'
end
if redis.call('EXISTS', usedKey) == 1 then
    return 'replayed'
end
redis.call('DEL', aliasKey)
redis.call('ZREM', aliasesKey, alias)
if usedTtl > 0 then
    redis.call('SET', usedKey, '1', 'PX', usedTtl)
else
    redis.call('SET', usedKey, '1')
end
return 'released'
