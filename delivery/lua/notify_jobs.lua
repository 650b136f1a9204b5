-- The notification job queue: a zset of job ids by due time and a hash of their payloads.
-- ARGV[1] is the operation:
--   add   id payload due    -> 1 added, 0 a job with this id is pending (coalesced; unchanged)
--   retry id payload due    -> 1 (payload replaced, due time set)
--   done  id                -> 1 removed, 0 unknown
--   claim now lease limit   -> {id, payload, id, payload, …}: up to `limit` jobs due at `now`,
--                              each leased until now + lease (due again then, if the process that
--                              claimed it dies before `done` or `retry`)

local dueKey  = KEYS[1] -- zset: job id -> due time (seconds, caller's clock)
local jobsKey = KEYS[2] -- hash: job id -> payload (JSON)
local op      = ARGV[1]

if op == 'add' then
    if redis.call('HSETNX', jobsKey, ARGV[2], ARGV[3]) == 0 then
        return 0
    end
    redis.call('ZADD', dueKey, ARGV[4], ARGV[2])
    return 1
elseif op == 'retry' then
    redis.call('HSET', jobsKey, ARGV[2], ARGV[3])
    redis.call('ZADD', dueKey, ARGV[4], ARGV[2])
    return 1
elseif op == 'done' then
    redis.call('ZREM', dueKey, ARGV[2])
    return redis.call('HDEL', jobsKey, ARGV[2])
elseif op == 'claim' then
    local now, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
    local ids = redis.call('ZRANGEBYSCORE', dueKey, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
    local out = {}
    for _, id in ipairs(ids) do
        local payload = redis.call('HGET', jobsKey, id)
        if payload then
            redis.call('ZADD', dueKey, now + lease, id)
            out[#out + 1] = id
            out[#out + 1] = payload
        else
            redis.call('ZREM', dueKey, id)
        end
    end
    return out
end
return redis.error_reply('unknown operation')
