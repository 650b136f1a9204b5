-- Registers an address's signed profile and records its address name under one addr domain.
-- Returns 'created' (first profile), 'replaced' (the previous profile's content hash is added to
-- the superseded set), 'unchanged' (same content as the current profile; only the domain is
-- recorded) or 'superseded' (this content was replaced before: nothing changes).

local profileKey    = KEYS[1] -- hash: profile (canonical JSON), hash (content hash), updated_at (ms)
local supersededKey = KEYS[2] -- set:  content hashes of every profile this address replaced
local domainsKey    = KEYS[3] -- set:  addr domains the address name is registered under
local profileJson   = ARGV[1] -- [string]  canonical JSON of the SignedUserProfile
local contentHash   = ARGV[2] -- [string]  sha256 0x-hex of the canonical JSON of the UserProfile
local domain        = ARGV[3] -- [string]  normalised addr domain, e.g. addr.ensign.eth
local now           = ARGV[4] -- [integer] caller's clock, milliseconds

if redis.call('SISMEMBER', supersededKey, contentHash) == 1 then
    return 'superseded'
end
local current = redis.call('HGET', profileKey, 'hash')
if current == contentHash then
    redis.call('SADD', domainsKey, domain)
    return 'unchanged'
end
if current then
    redis.call('SADD', supersededKey, current)
end
redis.call('HSET', profileKey, 'profile', profileJson, 'hash', contentHash, 'updated_at', now)
redis.call('SADD', domainsKey, domain)
if current then
    return 'replaced'
end
return 'created'
