-- Records the API's answer and, the first time only, counts its usage on the job's day.
-- KEYS: the job's hash.
-- ARGV: id, now (ms), result URL, request id, credits used, tokens used ('' when unknown).
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then return 0 end
local counted = redis.call('HEXISTS', job, 'credits_used') == 1
  or redis.call('HEXISTS', job, 'tokens_used') == 1
local fields = {'updated_ms', ARGV[2]}
local names = {'generated_url', 'request_id', 'credits_used', 'tokens_used'}
for i, name in ipairs(names) do
  if ARGV[i + 2] ~= '' then
    table.insert(fields, name)
    table.insert(fields, ARGV[i + 2])
  end
end
redis.call('HSET', job, unpack(fields))
local usage = ARGV[5]
if usage == '' then usage = ARGV[6] end
if not counted and usage ~= '' then
  local day = string.format('%d', math.floor(tonumber(redis.call('HGET', job, 'created_ms')) / 86400000))
  redis.call('HINCRBYFLOAT', 'reve:usage:' .. day, 'credits', usage)
  redis.call('HINCRBY', 'reve:usage:' .. day, 'jobs', 1)
  redis.call('ZADD', 'reve:usage:days', day, day)
  redis.call('SET', 'reve:usage:last', usage)
end
redis.call('SREM', 'reve:in_flight', ARGV[1])
return 1
