-- dm3 addMessage / addMessageBatch: stores new messages in one conversation (created when missing)
-- and moves the conversation's updatedAt to now. All or nothing: one id that is stored already, or
-- a batch past the quota, refuses the whole batch.
-- Returns {'added', n}, {'duplicate', id} or {'quota', bytes used}.

local convsKey   = KEYS[1] -- zset:   conversation id -> updatedAt (ms)
local visibleKey = KEYS[2] -- zset:   the conversations not hidden
local convKey    = KEYS[3] -- hash:   contact, location, hidden, updatedAt
local msgsKey    = KEYS[4] -- zset:   message id -> createdAt (ms), the conversation's messages
local haltedKey  = KEYS[5] -- zset:   message id -> createdAt (ms), halted messages of the account
local usageKey   = KEYS[6] -- string: bytes the account keeps
-- KEYS[7..]: hash per message: cid, contact, container, createdAt, halted (0|1)
local cid        = ARGV[1]            -- [string]  conversation id
local contact    = ARGV[2]            -- [string]  encryptedContactName
local now        = ARGV[3]            -- [integer] caller's clock, ms
local quota      = tonumber(ARGV[4])  -- [integer] bytes the account may keep
-- ARGV[5..]: four per message: id, createdAt (ms), container, halted (0|1)

local count = #KEYS - 6
local cost = 0
for i = 1, count do
    if redis.call('EXISTS', KEYS[6 + i]) == 1 then
        return {'duplicate', ARGV[1 + 4 * i]}
    end
    cost = cost + #ARGV[3 + 4 * i]
end
local exists = redis.call('EXISTS', convKey) == 1
if not exists then
    cost = cost + #contact
end
local used = tonumber(redis.call('GET', usageKey) or '0')
if used + cost > quota then
    return {'quota', tostring(used)}
end
redis.call('INCRBY', usageKey, cost)
if not exists then
    redis.call('HSET', convKey, 'contact', contact, 'location', '', 'hidden', '0')
end
redis.call('HSET', convKey, 'updatedAt', now)
redis.call('ZADD', convsKey, now, cid)
if redis.call('HGET', convKey, 'hidden') == '0' then
    redis.call('ZADD', visibleKey, now, cid)
end
for i = 1, count do
    local id, createdAt, container, halted = ARGV[1 + 4 * i], ARGV[2 + 4 * i], ARGV[3 + 4 * i], ARGV[4 + 4 * i]
    redis.call('HSET', KEYS[6 + i], 'cid', cid, 'contact', contact, 'container', container,
        'createdAt', createdAt, 'halted', halted)
    redis.call('ZADD', msgsKey, createdAt, id)
    if halted == '1' then
        redis.call('ZADD', haltedKey, createdAt, id)
    end
end
return {'added', tostring(count)}
