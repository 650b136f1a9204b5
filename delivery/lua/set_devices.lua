-- Replaces an account's device list (the account hash's `devices` field) and settles the per-device
-- acknowledgements with it, then announces the change on the account's sessions channel, so every
-- process ends the sockets of a removed device (and of sessions without a device, once a list exists).
-- A device that is no longer listed drops out of every message's acknowledgers: a message every
-- remaining device has acknowledged leaves the queue here (remembered as ack.lua does). With no list
-- left, the account is back to one implicit device that has acknowledged nothing: every entry goes.
-- Applies only to the state the caller read: returns -1 (nothing changes) when the account is gone
-- or its `devices` field is no longer `expected`; else the number of messages that left.

local queueKey      = KEYS[1] -- zset: message id -> receive sequence
local expiryKey     = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey        = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey      = KEYS[4] -- string: bytes of every record in msgKey
local ackedKey      = KEYS[5] -- zset: "<id>|<sender>" of an acknowledged message -> forget_at
local accountKey    = KEYS[6] -- hash: the account
local seenKey       = KEYS[7] -- hash: message id -> ",<device>,…,": devices that acked it (ack.lua)
local expected      = ARGV[1] -- [string] the `devices` field the caller read, "" when there was none
local devices       = ARGV[2] -- [string] the new `devices` JSON {at, list: [{id, key, since}]}, "" = none
local sessions      = ARGV[3] -- [string] pub/sub channel of the account's sessions
local nowArg        = ARGV[4] -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local remember      = tonumber(ARGV[5]) -- [integer] seconds an acknowledged message is remembered
local maxRemembered = tonumber(ARGV[6]) -- [integer] most acknowledged messages remembered

if redis.call('EXISTS', accountKey) == 0 or (redis.call('HGET', accountKey, 'devices') or '') ~= expected then
    return -1
end
local now
if nowArg == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
    now = tonumber(nowArg)
end

local left = 0
if devices == '' then
    redis.call('HDEL', accountKey, 'devices')
    redis.call('DEL', seenKey)
else
    redis.call('HSET', accountKey, 'devices', devices)
    local ids = {}
    for _, each in ipairs(cjson.decode(devices)['list']) do
        ids[#ids + 1] = each['id']
    end
    local entries = redis.call('HGETALL', seenKey)
    local freed = 0
    for i = 1, #entries, 2 do
        local id, seen = entries[i], entries[i + 1]
        local kept, all = ',', true
        for _, device in ipairs(ids) do
            if string.find(seen, ',' .. device .. ',', 1, true) then
                kept = kept .. device .. ','
            else
                all = false
            end
        end
        if all then
            local record = redis.call('HGET', msgKey, id)
            if record then
                freed = freed + #record
                local head = string.match(record, '^[^ ]*')
                local sender = string.match(head, '|(.*)$') or ''
                redis.call('ZADD', ackedKey, now + remember, id .. '|' .. sender)
            end
            left = left + redis.call('ZREM', queueKey, id)
            redis.call('ZREM', expiryKey, id)
            redis.call('HDEL', msgKey, id)
            redis.call('HDEL', seenKey, id)
        elseif kept == ',' then
            redis.call('HDEL', seenKey, id)
        elseif kept ~= seen then
            redis.call('HSET', seenKey, id, kept)
        end
    end
    if freed > 0 then
        if redis.call('DECRBY', bytesKey, freed) <= 0 then
            redis.call('DEL', bytesKey)
        end
        redis.call('ZREMRANGEBYSCORE', ackedKey, '-inf', now)
        local extra = redis.call('ZCARD', ackedKey) - maxRemembered
        if extra > 0 then
            redis.call('ZREMRANGEBYRANK', ackedKey, 0, extra - 1)
        end
        redis.call('EXPIRE', ackedKey, remember)
    end
end
redis.call('PUBLISH', sessions, 'devices')
return left
