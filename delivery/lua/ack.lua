-- Removes messages from an account's queue by id; unknown ids are ignored. O(log n) per id.
-- Each message removed is remembered in KEYS[5] as "<id>|<sender>" until `now + remember`, so the
-- sender's retry of a submission whose answer it never got (the message meanwhile fetched and
-- acknowledged) is recognised by enqueue.lua and not delivered twice. The memory keeps the newest
-- `maxRemembered` entries; the key expires `remember` seconds after the last ack.
-- Returns the number of ids that were queued (expired but unswept ones included).

local queueKey      = KEYS[1] -- zset: message id -> receive sequence
local expiryKey     = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey        = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey      = KEYS[4] -- string: bytes of every record in msgKey
local ackedKey      = KEYS[5] -- zset: "<id>|<sender>" of an acknowledged message -> forget_at
local nowArg        = ARGV[1] -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local remember      = tonumber(ARGV[2]) -- [integer] seconds an acknowledged message is remembered
local maxRemembered = tonumber(ARGV[3]) -- [integer] most acknowledged messages remembered
-- ARGV[4..n]      [string] message ids, at least one (the caller sends at most a few hundred)

local now
if nowArg == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
    now = tonumber(nowArg)
end

local freed = 0
local removed = 0
for i = 4, #ARGV do
    local id = ARGV[i]
    local record = redis.call('HGET', msgKey, id)
    if record then
        freed = freed + #record
        local head = string.match(record, '^[^ ]*')
        local sender = string.match(head, '|(.*)$') or ''
        redis.call('ZADD', ackedKey, now + remember, id .. '|' .. sender)
    end
    removed = removed + redis.call('ZREM', queueKey, id)
    redis.call('ZREM', expiryKey, id)
    redis.call('HDEL', msgKey, id)
end
if freed > 0 and redis.call('DECRBY', bytesKey, freed) <= 0 then
    redis.call('DEL', bytesKey)
end
if freed > 0 then
    redis.call('ZREMRANGEBYSCORE', ackedKey, '-inf', now)
    local extra = redis.call('ZCARD', ackedKey) - maxRemembered
    if extra > 0 then
        redis.call('ZREMRANGEBYRANK', ackedKey, 0, extra - 1)
    end
    redis.call('EXPIRE', ackedKey, remember)
end
return removed
