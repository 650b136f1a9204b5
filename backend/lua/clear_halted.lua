-- dm3 clearHaltedMessage: the message is no longer halted and, with an alias name, moves to the
-- alias's conversation (created when missing, with the old conversation's profile location); an
-- old conversation left without messages is removed, as dm3 renames it.
-- Returns 'cleared', 'no_message' or 'moved' (the message changed conversation meanwhile: retry).

local haltedKey  = KEYS[1] -- zset: halted message ids
local msgKey     = KEYS[2] -- hash: the message
local oldMsgsKey = KEYS[3] -- zset: messages of its conversation
local oldConvKey = KEYS[4] -- hash: its conversation
local newMsgsKey = KEYS[5] -- zset: messages of the alias's conversation (= KEYS[3] without alias)
local newConvKey = KEYS[6] -- hash: the alias's conversation (= KEYS[4] without alias)
local convsKey   = KEYS[7] -- zset: every conversation
local visibleKey = KEYS[8] -- zset: the conversations not hidden
local id         = ARGV[1] -- [string] message id (hashed, as getHaltedMessages answers)
local oldCid     = ARGV[2] -- [string] conversation id the caller read from the message
local newCid     = ARGV[3] -- [string] the alias's conversation id ('' without alias)
local alias      = ARGV[4] -- [string] aliasName ('' without alias)
local now        = ARGV[5] -- [integer] caller's clock, ms

local cid = redis.call('HGET', msgKey, 'cid')
if not cid then
    return 'no_message'
end
if cid ~= oldCid then
    return 'moved'
end
redis.call('HSET', msgKey, 'halted', '0')
redis.call('ZREM', haltedKey, id)
if newCid == '' or newCid == oldCid then
    return 'cleared'
end
local createdAt = redis.call('HGET', msgKey, 'createdAt')
redis.call('HSET', msgKey, 'cid', newCid, 'contact', alias)
redis.call('ZREM', oldMsgsKey, id)
redis.call('ZADD', newMsgsKey, createdAt, id)
if redis.call('EXISTS', newConvKey) == 0 then
    local location = redis.call('HGET', oldConvKey, 'location') or ''
    redis.call('HSET', newConvKey, 'contact', alias, 'location', location, 'hidden', '0', 'updatedAt', now)
    redis.call('ZADD', convsKey, now, newCid)
    redis.call('ZADD', visibleKey, now, newCid)
end
if redis.call('ZCARD', oldMsgsKey) == 0 then
    redis.call('DEL', oldConvKey)
    redis.call('ZREM', convsKey, oldCid)
    redis.call('ZREM', visibleKey, oldCid)
end
return 'cleared'
