-- Replaces an account's settings while the account exists (a deleted account is not re-created
-- with only a settings field). Returns 1 when updated, 0 when there is no account.

local accountKey = KEYS[1] -- hash: the account
local settings   = ARGV[1] -- [string] canonical JSON of the settings

if redis.call('EXISTS', accountKey) == 0 then
    return 0
end
redis.call('HSET', accountKey, 'settings', settings)
return 1
