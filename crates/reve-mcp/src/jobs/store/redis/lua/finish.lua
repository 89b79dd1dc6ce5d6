-- Records how a job ended, unless it already succeeded; frees its fingerprint, or keeps it
-- for the reuse window after a success.
-- KEYS: the job's hash.
-- ARGV: id, now (ms), state, refused by the API ('1'/'0'), unsaved ('1'/'0'), error ('' for
--   none), revision and payload ('' and '' to keep the generation as it is).
local job = KEYS[1]
local id, now, state, refused = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local current = redis.call('HMGET', job, 'state', 'principal', 'created_ms', 'reused_from',
  'fingerprint', 'reuse_window_ms', 'sent', 'credits_used', 'tokens_used', 'may_be_charged',
  'revision', 'usd_spent')
local unsaved = ARGV[5] == '1'
if not current[1] then return 0 end
if current[1] == 'succeeded' then return 0 end
redis.call('HSET', job, 'state', state, 'updated_ms', now, 'finished_ms', now,
  'unsaved', unsaved and '1' or '0')
if ARGV[6] ~= '' then
  redis.call('HSET', job, 'error', ARGV[6])
else
  redis.call('HDEL', job, 'error')
end
if ARGV[7] ~= '' and tonumber(ARGV[7]) > tonumber(current[11] or '0') then
  redis.call('HSET', job, 'revision', ARGV[7], 'payload', ARGV[8])
end
-- Sent, no cost reported, not refused by the API: it may have been charged.
local uncertain = current[7] == '1' and not current[8] and not current[9] and not current[12]
  and not refused
local was_uncertain = current[10] == '1'
if uncertain ~= was_uncertain then
  local day = string.format('%d', math.floor(tonumber(current[3]) / 86400000))
  redis.call('HSET', job, 'may_be_charged', uncertain and '1' or '0')
  if uncertain then
    redis.call('SADD', 'reve:unsettled', id)
  else
    redis.call('SREM', 'reve:unsettled', id)
  end
  redis.call('HINCRBY', 'reve:usage:' .. day, 'uncertain', uncertain and 1 or -1)
  redis.call('HINCRBY', 'reve:usage:' .. day .. ':uncertain',
    redis.call('HGET', job, 'model') or 'reve/edit-image', uncertain and 1 or -1)
  redis.call('ZADD', 'reve:usage:days', day, day)
end
redis.call('SREM', 'reve:unfinished', id)
redis.call('SREM', 'reve:in_flight', id)
redis.call('DEL', 'reve:lease:' .. id)
if state == 'succeeded' and not current[4] then
  redis.call('ZADD', 'reve:results:' .. current[2], 0,
    string.format('%016d', tonumber(current[3])) .. '.' .. id)
end
if current[5] then
  local fp = 'reve:fp:' .. current[5]
  if redis.call('GET', fp) == id then
    local window = tonumber(current[6] or '0')
    if (state == 'succeeded' or unsaved) and window > 0 then
      redis.call('PEXPIRE', fp, window)
    else
      redis.call('DEL', fp)
    end
  end
end
return 1
