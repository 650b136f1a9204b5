-- Binds an account to a new profile (its signing key), or re-creates a deleted or absent account
-- bound to it, and announces the change on the account's sessions channel so every process ends
-- the sockets of the old binding at once.
-- Applies only to the state the caller read and judged: the account's `bound` field (or its
-- absence) and the tombstone. Returns 1 when re-bound, 2 when created, -1 when either changed
-- since the caller read them (nothing changes).

local accountKey   = KEYS[1] -- hash: the account
local tombstoneKey = KEYS[2] -- string: the account's last deletion
local expected     = ARGV[1] -- [string] the account's `bound` the caller read, "" when it had none
local tombstone    = ARGV[2] -- [string] the tombstone the caller read, "" when there was none
local sessions     = ARGV[3] -- [string] pub/sub channel of the account's sessions
-- ARGV[4..n]        [string] field, value, … : `profile`, `key`, `bound` on a re-binding, the
--                   whole account hash on a creation

local exists = redis.call('EXISTS', accountKey) == 1
if expected == '' then
    if exists or (redis.call('GET', tombstoneKey) or '') ~= tombstone then
        return -1
    end
    redis.call('HSET', accountKey, unpack(ARGV, 4))
    redis.call('DEL', tombstoneKey)
    return 2
end
if not exists then
    return -1
end
local bound = redis.call('HGET', accountKey, 'bound') or redis.call('HGET', accountKey, 'created')
if bound ~= expected then
    return -1
end
redis.call('HSET', accountKey, unpack(ARGV, 4))
redis.call('PUBLISH', sessions, 'bound')
return 1
