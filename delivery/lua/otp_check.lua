-- Checks a one-time password against the stored one, counting the attempt.
-- Returns 1 when it matches (the password is deleted: it works once), 0 when it does not (and
-- attempts remain), -1 when there is no password (never sent, expired or used), -2 when this
-- attempt used up the allowed ones (the password is deleted; a new one must be sent).

local otpKey      = KEYS[1] -- hash: {code = sha256 hex of the password, recipient, attempts}
local codeHash    = ARGV[1] -- [string]  sha256 hex of the password tried
local maxAttempts = tonumber(ARGV[2]) -- [integer] wrong guesses allowed per password

local stored = redis.call('HGET', otpKey, 'code')
if not stored then
    return -1
end
if stored == codeHash then
    redis.call('DEL', otpKey)
    return 1
end
local attempts = redis.call('HINCRBY', otpKey, 'attempts', 1)
if attempts >= maxAttempts then
    redis.call('DEL', otpKey)
    return -2
end
return 0
