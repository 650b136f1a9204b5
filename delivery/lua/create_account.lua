-- Creates an account unless it exists, and removes its tombstone, only if the tombstone is still
-- the one the caller read and judged (a deletion or creation since then makes it refuse).
-- Returns 1 when created, 0 when the account exists (nothing changes), -1 when the tombstone
-- changed since the caller read it (nothing changes).

local accountKey   = KEYS[1] -- hash: the account
local tombstoneKey = KEYS[2] -- string: the account's last deletion
local expected     = ARGV[1] -- [string] the tombstone the caller read, "" when there was none
-- ARGV[2..n]        [string] field, value, field, value, … of the account hash

if redis.call('EXISTS', accountKey) == 1 then
    return 0
end
if (redis.call('GET', tombstoneKey) or '') ~= expected then
    return -1
end
redis.call('HSET', accountKey, unpack(ARGV, 2))
redis.call('DEL', tombstoneKey)
return 1
