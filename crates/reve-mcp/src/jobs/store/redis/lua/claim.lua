-- Reuses an identical job, holds or refuses at the limit, or claims the fingerprint and
-- sends. The limit's rule is [`Spending::verdict`]'s, written again here because it must run
-- in the same atomic step as the claim.
-- KEYS: the job's hash (reve:job:<id>), its fingerprint's key (reve:fp:<fingerprint>).
-- ARGV: id, fingerprint, now (ms), reuse window (ms, 0 = no reuse), daily limit ('' = none),
--   today (days since the epoch), reuse finished jobs ('1'/'0'), may send ('1'/'0'),
--   then the ids of jobs passed over (never reused).
-- Returns {'send'}, {'reuse', other id}, {'not_sent'}, {'hold'}, {'missing'}, or
--   {'limit', used, then per model: model, in flight, uncertain, cost or ''}.
-- Runs after spending.lua, whose functions it calls.
local job, fp = KEYS[1], KEYS[2]
local id, fingerprint, now, window = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reuse_finished, may_send = ARGV[7] == '1', ARGV[8] == '1'
if redis.call('EXISTS', job) == 0 then return {'missing'} end
if window > 0 then
  local other = redis.call('GET', fp)
  for i = 9, #ARGV do
    if ARGV[i] == other then other = false end
  end
  if other and other ~= id then
    local s = redis.call('HMGET', 'reve:job:' .. other, 'state', 'finished_ms', 'unsaved')
    local recent = reuse_finished and tonumber(s[2] or '0') >= now - window
    if s[1] == 'queued' or s[1] == 'running'
       or (recent and (s[1] == 'succeeded' or (s[1] == 'failed' and s[3] == '1'))) then
      redis.call('HSET', job, 'state', 'running', 'reused_from', other, 'updated_ms', now)
      return {'reuse', other}
    end
  end
end
if not may_send then return {'not_sent'} end
if ARGV[5] ~= '' then
  local used, models, order = spending(ARGV[6])
  local decided = verdict(tonumber(ARGV[5]), used, models)
  if decided == 'over' then return spending_reply('limit', used, models, order) end
  if decided == 'hold' then return {'hold'} end
end
redis.call('HSET', job, 'state', 'running', 'sent', '1', 'fingerprint', fingerprint,
  'reuse_window_ms', window, 'updated_ms', now)
redis.call('HDEL', job, 'reused_from')
if window > 0 then redis.call('SET', fp, id) end
redis.call('SADD', 'reve:in_flight', id)
return {'send'}
