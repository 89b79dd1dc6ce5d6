-- Records what the provider's usage logs said of a job that may have been charged, once: it is
-- no longer uncertain on its day, and a charge counts in its day's usage at the logs' cost.
-- KEYS: the job's hash.
-- ARGV: id, now (ms), 'charged' or 'not_charged', credits, US dollars ('' when unknown), note.
local job = KEYS[1]
local current = redis.call('HMGET', job, 'may_be_charged', 'settled', 'created_ms', 'model',
  'error', 'credits_used', 'usd_spent', 'tokens_used')
if current[1] ~= '1' or current[2] then return 0 end
local id, now, settled, credits, usd, note = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local day = string.format('%d', math.floor(tonumber(current[3]) / 86400000))
local model = current[4] or 'reve/edit-image'
local message = note
if current[5] then message = current[5] .. '\n' .. note end
redis.call('HSET', job, 'settled', settled, 'may_be_charged', '0', 'updated_ms', now,
  'error', message)
redis.call('HINCRBY', 'reve:usage:' .. day, 'uncertain', -1)
redis.call('HINCRBY', 'reve:usage:' .. day .. ':uncertain', model, -1)
redis.call('SREM', 'reve:unsettled', id)
if settled == 'charged' then
  -- Counted once, as SQLite counts COALESCE(credits_used, tokens_used).
  if credits ~= '' and not current[6] and not current[8] then
    redis.call('HSET', job, 'credits_used', credits)
    redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'credits', credits)
    redis.call('HINCRBY', 'reve:usage:' .. day, 'jobs', 1)
    redis.call('HSET', 'reve:usage:costs', model, credits)
  end
  if usd ~= '' and not current[7] then
    redis.call('HSET', job, 'usd_spent', usd)
    redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'usd', usd)
    redis.call('HSET', 'reve:usage:usd_costs', model, usd)
  end
end
return 1
