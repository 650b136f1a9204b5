-- Sets and removes fields of an account hash while the account exists (never re-creating a
-- deleted account with a stray field), then recomputes the `notify` summary field that intake
-- reads: "1" when notifications are on (`notify:global` = "1") and at least one channel
-- (`notify:EMAIL`, `notify:PUSH`, JSON {recipientValue, isEnabled, isVerified}) is enabled and
-- verified; absent otherwise. Returns 1 when changed, 0 when there is no account.

local accountKey = KEYS[1] -- hash: the account
local nSet       = tonumber(ARGV[1]) -- [integer] how many field/value pairs follow
-- ARGV[2 .. 1+2*nSet]   [string] field, value, … to set
-- ARGV[2+2*nSet ..]     [string] fields to remove

if redis.call('EXISTS', accountKey) == 0 then
    return 0
end
if nSet > 0 then
    redis.call('HSET', accountKey, unpack(ARGV, 2, 1 + 2 * nSet))
end
if #ARGV > 1 + 2 * nSet then
    redis.call('HDEL', accountKey, unpack(ARGV, 2 + 2 * nSet))
end

local on = false
if redis.call('HGET', accountKey, 'notify:global') == '1' then
    for _, kind in ipairs({'EMAIL', 'PUSH'}) do
        local raw = redis.call('HGET', accountKey, 'notify:' .. kind)
        if raw then
            local ok, channel = pcall(cjson.decode, raw)
            if ok and type(channel) == 'table' and channel['isEnabled'] == true and channel['isVerified'] == true then
                on = true
            end
        end
    end
end
if on then
    redis.call('HSET', accountKey, 'notify', '1')
else
    redis.call('HDEL', accountKey, 'notify')
end
return 1
