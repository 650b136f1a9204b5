-- Removes messages from an account's queue by id; unknown ids are ignored. O(log n) per id.
-- Each message removed is remembered in KEYS[5] as "<id>|<sender>" until `now + remember`, so the
-- sender's retry of a submission whose answer it never got (the message meanwhile fetched and
-- acknowledged) is recognised by enqueue.lua and not delivered twice. The memory keeps the newest
-- `maxRemembered` entries; the key expires `remember` seconds after the last ack.
-- With a device list (the account hash's `devices` field, KEYS[6]), an ack is one device's: the
-- device is added to the message's acknowledgers in KEYS[7], and the message leaves only when
-- every listed device has acknowledged it. The acking device must be the current state: a device
-- id with a list, "" without one; otherwise nothing changes and -1 is returned (the session is stale).
-- Returns the number of ids that were queued (expired but unswept ones included) and are now
-- acknowledged by this device (removed, without a device list).

local queueKey      = KEYS[1] -- zset: message id -> receive sequence
local expiryKey     = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey        = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey      = KEYS[4] -- string: bytes of every record in msgKey
local ackedKey      = KEYS[5] -- zset: "<id>|<sender>" of an acknowledged message -> forget_at
local nowArg        = ARGV[1] -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local remember      = tonumber(ARGV[2]) -- [integer] seconds an acknowledged message is remembered
local maxRemembered = tonumber(ARGV[3]) -- [integer] most acknowledged messages remembered
local accountKey    = KEYS[6] -- hash: the account (field `devices`: JSON {at, list: [{id, …}]})
local seenKey       = KEYS[7] -- hash: message id -> ",<device>,<device>,": devices that acked it
local device        = ARGV[4] -- [string] the acking device's id; "" = the account has no device list
-- ARGV[5..n]      [string] message ids, at least one (the caller sends at most a few hundred)

local now
if nowArg == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
    now = tonumber(nowArg)
end

local devices = nil
local raw = redis.call('HGET', accountKey, 'devices')
if raw then
    devices = {}
    for _, each in ipairs(cjson.decode(raw)['list']) do
        devices[#devices + 1] = each['id']
    end
end
local function has(seen, id)
    return string.find(seen, ',' .. id .. ',', 1, true) ~= nil
end
if (devices == nil) ~= (device == '') or (devices and not has(',' .. table.concat(devices, ',') .. ',', device)) then
    return -1
end

local freed = 0
local removed = 0
local kept = false
for i = 5, #ARGV do
    local id = ARGV[i]
    local all = true
    if devices and redis.call('HEXISTS', msgKey, id) == 1 then
        local seen = redis.call('HGET', seenKey, id) or ','
        if has(seen, device) then
            all = false -- acknowledged by this device before; the others still miss it
        else
            seen = seen .. device .. ','
            for _, each in ipairs(devices) do
                if not has(seen, each) then
                    all = false
                    break
                end
            end
            if all then
                redis.call('HDEL', seenKey, id)
            else
                redis.call('HSET', seenKey, id, seen)
                kept = true
                removed = removed + 1
            end
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
        removed = removed + redis.call('ZREM', queueKey, id)
        redis.call('ZREM', expiryKey, id)
        redis.call('HDEL', msgKey, id)
    end
end
if kept then
    -- Backstop as the queue's own keys: its entries never outlive their messages.
    local ttl = redis.call('TTL', queueKey)
    if ttl > 0 then
        redis.call('EXPIRE', seenKey, ttl)
    end
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
