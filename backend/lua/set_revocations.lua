-- Replaces an address's revocation list, only if it is still the one the caller checked the new
-- list against (the new one keeps all of its entries). Returns 1 when written, 0 when the stored
-- list changed meanwhile (nothing written; the caller reads and checks again).

local revocationsKey = KEYS[1] -- string: canonical JSON of the signed revocation list
local expected       = ARGV[1] -- [string] the list the caller read, "" when there was none
local list           = ARGV[2] -- [string] canonical JSON of the new list

local current = redis.call('GET', revocationsKey)
if (current or '') ~= expected then
    return 0
end
redis.call('SET', revocationsKey, list)
return 1
