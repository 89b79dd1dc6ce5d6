-- Records how a job ended, unless it already succeeded; frees its fingerprint, or keeps it
-- for the reuse window after a success.
-- KEYS: the job's hash.
-- ARGV: id, now (ms), state, refused by the API ('1'/'0'), unsaved ('1'/'0'), the number N of
--   fields to set, then N pairs of field and value, then the fields to delete.
local job = KEYS[1]
local id, now, state, refused = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local current = redis.call('HMGET', job, 'state', 'principal', 'created_ms', 'reused_from',
  'fingerprint', 'reuse_window_ms', 'sent', 'credits_used', 'tokens_used', 'may_be_charged',
  'generated_url')
local unsaved = ARGV[5] == '1' and current[11] ~= false
if not current[1] then return 0 end
if current[1] == 'succeeded' then return 0 end
local set_count = tonumber(ARGV[6])
local fields = {'state', state, 'updated_ms', now, 'finished_ms', now, 'unsaved', unsaved and '1' or '0'}
for i = 1, set_count * 2 do table.insert(fields, ARGV[6 + i]) end
redis.call('HSET', job, unpack(fields))
for i = 7 + set_count * 2, #ARGV do redis.call('HDEL', job, ARGV[i]) end
-- Sent, no cost reported, not refused by the API: it may have been charged.
local uncertain = current[7] == '1' and not current[8] and not current[9] and not refused
local was_uncertain = current[10] == '1'
if uncertain ~= was_uncertain then
  local day = string.format('%d', math.floor(tonumber(current[3]) / 86400000))
  redis.call('HSET', job, 'may_be_charged', uncertain and '1' or '0')
  redis.call('HINCRBY', 'reve:usage:' .. day, 'uncertain', uncertain and 1 or -1)
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
