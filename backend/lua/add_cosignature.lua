-- Attaches a verified co-signature to a stored revision, if the revision exists and has fewer than
-- maxCosigs co-signatures. The revision itself (and its _rev) is untouched.
-- Returns 'added', 'unchanged' (this signer co-signed already), 'no_revision' or 'limit'.

local revKey    = KEYS[1] -- hash: the revision
local cosigKey  = KEYS[2] -- hash: signer public key -> signature
local signer    = ARGV[1]            -- [string]  base64 Ed25519 public key
local signature = ARGV[2]            -- [string]  base64 signature
local maxCosigs = tonumber(ARGV[3])  -- [integer] most co-signatures per revision

if redis.call('EXISTS', revKey) == 0 then
    return 'no_revision'
end
if redis.call('HEXISTS', cosigKey, signer) == 1 then
    return 'unchanged'
end
if redis.call('HLEN', cosigKey) >= maxCosigs then
    return 'limit'
end
redis.call('HSET', cosigKey, signer, signature)
return 'added'
