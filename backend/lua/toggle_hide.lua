-- dm3 toggleHideConversation: sets the hidden flag and keeps the visible index in step.
-- Returns 'hidden', 'shown' or 'no_conversation'.

local visibleKey = KEYS[1] -- zset: conversation id -> updatedAt (ms), the ones not hidden
local convKey    = KEYS[2] -- hash: contact, location, hidden, updatedAt
local cid        = ARGV[1] -- [string] conversation id
local hide       = ARGV[2] -- [0|1]

if redis.call('EXISTS', convKey) == 0 then
    return 'no_conversation'
end
redis.call('HSET', convKey, 'hidden', hide)
if hide == '1' then
    redis.call('ZREM', visibleKey, cid)
    return 'hidden'
end
redis.call('ZADD', visibleKey, redis.call('HGET', convKey, 'updatedAt'), cid)
return 'shown'
