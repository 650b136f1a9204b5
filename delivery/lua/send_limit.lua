-- A sending limit: at most one send per `interval` seconds and `daily` sends per day for one
-- account. Returns 0 when this send may go (both counted), else the seconds to wait.

local waitKey  = KEYS[1] -- string: present while the interval since the last send runs
local dayKey   = KEYS[2] -- string: sends in the current day window (expires with it)
local interval = tonumber(ARGV[1]) -- [integer] seconds between two sends
local daily    = tonumber(ARGV[2]) -- [integer] most sends per day window
local day      = tonumber(ARGV[3]) -- [integer] seconds of the day window (86400)

local wait = redis.call('TTL', waitKey)
if wait > 0 then
    return wait
end
local sent = tonumber(redis.call('GET', dayKey) or '0')
if sent >= daily then
    local left = redis.call('TTL', dayKey)
    if left > 0 then
        return left
    end
end
redis.call('SET', waitKey, '1', 'EX', interval)
if redis.call('INCR', dayKey) == 1 then
    redis.call('EXPIRE', dayKey, day)
end
return 0
