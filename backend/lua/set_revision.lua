-- Appends a verified revision to a document, if its _lastrev is the document's head, the revision
-- is not stored already, the namespace has room for a new document and the account's quota holds
-- it. Refusals change nothing.
-- Returns {outcome, detail}: {'ok', rev}, {'conflict', head or ''}, {'exists', head or ''},
-- {'too_many', ''} or {'quota', bytes used}.

local headsKey  = KEYS[1] -- hash:   document key -> head revision hash, one per namespace
local histKey   = KEYS[2] -- list:   the document's revision hashes, oldest first
local revKey    = KEYS[3] -- hash:   json (the revision), stored_at (ms)
local usageKey  = KEYS[4] -- string: bytes the account keeps
local docKey    = ARGV[1]            -- [string]  document key
local lastrev   = ARGV[2]            -- [string]  the revision's _lastrev, '' for none
local rev       = ARGV[3]            -- [string]  the revision's _rev
local json      = ARGV[4]            -- [string]  canonical JSON of the revision
local storedAt  = ARGV[5]            -- [integer] caller's clock, ms
local size      = tonumber(ARGV[6])  -- [integer] bytes this revision costs
local quota     = tonumber(ARGV[7])  -- [integer] bytes the account may keep
local maxDocs   = tonumber(ARGV[8])  -- [integer] most documents in the namespace

local head = redis.call('HGET', headsKey, docKey)
if redis.call('EXISTS', revKey) == 1 then
    return {'exists', head or ''}
end
if (head or '') ~= lastrev then
    return {'conflict', head or ''}
end
if not head and redis.call('HLEN', headsKey) >= maxDocs then
    return {'too_many', ''}
end
local used = tonumber(redis.call('GET', usageKey) or '0')
if used + size > quota then
    return {'quota', tostring(used)}
end
redis.call('HSET', revKey, 'json', json, 'stored_at', storedAt)
redis.call('RPUSH', histKey, rev)
redis.call('HSET', headsKey, docKey, rev)
redis.call('INCRBY', usageKey, size)
return {'ok', rev}
