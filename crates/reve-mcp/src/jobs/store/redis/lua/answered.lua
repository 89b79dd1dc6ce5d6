-- Records the API's answer: the job's generation (unless a newer revision is there) and, the
-- first time only, its cost on the job's day.
-- KEYS: the job's hash.
-- ARGV: id, now (ms), credits used, tokens used, US dollars spent ('' when unknown), revision,
--   payload.
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then return 0 end
local counted = redis.call('HEXISTS', job, 'credits_used') == 1
  or redis.call('HEXISTS', job, 'tokens_used') == 1
  or redis.call('HEXISTS', job, 'usd_spent') == 1
local fields = {'updated_ms', ARGV[2]}
if tonumber(ARGV[6]) > tonumber(redis.call('HGET', job, 'revision') or '0') then
  table.insert(fields, 'revision')
  table.insert(fields, ARGV[6])
  table.insert(fields, 'payload')
  table.insert(fields, ARGV[7])
end
if not counted then
  if ARGV[3] ~= '' then
    table.insert(fields, 'credits_used')
    table.insert(fields, ARGV[3])
  end
  if ARGV[4] ~= '' then
    table.insert(fields, 'tokens_used')
    table.insert(fields, ARGV[4])
  end
  if ARGV[5] ~= '' then
    table.insert(fields, 'usd_spent')
    table.insert(fields, ARGV[5])
  end
end
redis.call('HSET', job, unpack(fields))
local usage = ARGV[3]
if usage == '' then usage = ARGV[4] end
local day = string.format('%d', math.floor(tonumber(redis.call('HGET', job, 'created_ms')) / 86400000))
if not counted and ARGV[5] ~= '' then
  redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'usd', ARGV[5])
  redis.call('HSET', 'reve:usage:usd_costs', redis.call('HGET', job, 'model') or 'reve/edit-image', ARGV[5])
  redis.call('ZADD', 'reve:usage:days', day, day)
end
if not counted and usage ~= '' then
  -- `credits` is the day's usage in whichever unit the API reported (what the limit counts);
  -- `tokens` the part of it reported as tokens, which `reve-mcp usage` names apart.
  redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'credits', usage)
  if ARGV[3] == '' then
    redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'tokens', usage)
  end
  redis.call('HINCRBY', 'reve:usage:' .. day, 'jobs', 1)
  redis.call('ZADD', 'reve:usage:days', day, day)
  redis.call('SET', 'reve:usage:last', usage)
  redis.call('HSET', 'reve:usage:costs', redis.call('HGET', job, 'model') or 'reve/edit-image', usage)
end
-- An answer with its cost in one unit only: each limit counts it at the model's price in the
-- unit it lacks (`usd_missing`, `units_missing` per model on its day).
if not counted and (usage == '') ~= (ARGV[5] == '') then
  local missing = 'usd_missing'
  if usage == '' then missing = 'units_missing' end
  redis.call('HINCRBY', 'reve:usage:' .. day .. ':' .. missing,
    redis.call('HGET', job, 'model') or 'reve/edit-image', 1)
end
redis.call('SREM', 'reve:in_flight', ARGV[1])
return 1
