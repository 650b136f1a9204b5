-- Gives an alias to an address, if the alias is free, the address holds fewer than maxAliases,
-- the owner's profile is still the one whose key verified the claim, and the signed claim was not
-- used before. Refusals change nothing.
-- Returns 'claimed', 'unchanged' (the address already holds the alias), 'taken' (another address
-- holds it), 'limit', 'replayed' or 'stale_profile'.

local aliasKey    = KEYS[1] -- string: alias -> owner address (lowercase hex)
local aliasesKey  = KEYS[2] -- zset:   the address's aliases -> claimed_at (ms)
local profileKey  = KEYS[3] -- hash:   the address's profile; field 'hash' is compared
local usedKey     = KEYS[4] -- string: marks this signed claim as used
local alias       = ARGV[1]            -- [string]  normalised alias
local address     = ARGV[2]            -- [string]  owner address, lowercase hex
local profileHash = ARGV[3]            -- [string]  content hash of the profile that verified the claim
local now         = ARGV[4]            -- [integer] caller's clock, milliseconds
local maxAliases  = tonumber(ARGV[5])  -- [integer] most aliases one address may hold
local usedTtl     = tonumber(ARGV[6])  -- [integer] ms to remember the claim; 0 = for ever
local strict      = ARGV[7] == '1'     -- [0|1]     1: any reuse is a replay (timestamped form);
                                       --           0: reuse is refused only if it changes state (dm3 form)

local function markUsed()
    if usedTtl > 0 then
        redis.call('SET', usedKey, '1', 'PX', usedTtl)
    else
        redis.call('SET', usedKey, '1')
    end
end

if redis.call('HGET', profileKey, 'hash') ~= profileHash then
    return 'stale_profile'
end
if strict and redis.call('EXISTS', usedKey) == 1 then
    return 'replayed'
end
local owner = redis.call('GET', aliasKey)
if owner == address then
    if strict then
        markUsed()
    end
    return 'unchanged'
end
if owner then
    return 'taken'
end
if redis.call('EXISTS', usedKey) == 1 then
    return 'replayed'
end
if redis.call('ZCARD', aliasesKey) >= maxAliases then
    return 'limit'
end
redis.call('SET', aliasKey, address)
redis.call('ZADD', aliasesKey, now, alias)
markUsed()
return 'claimed'
