-- Reuses an identical job, holds or refuses at the limit, or claims the fingerprint and
-- sends. The limit's rule is [`Spending::verdict`]'s, written again here because it must run
-- in the same atomic step as the claim.
-- KEYS: the job's hash (reve:job:<id>), its fingerprint's key (reve:fp:<fingerprint>).
-- ARGV: id, fingerprint, now (ms), reuse window (ms, 0 = no reuse), daily limit ('' = none),
--   today (days since the epoch), reuse finished jobs ('1'/'0'), may send ('1'/'0'),
--   the daily limit in US dollars ('' = none), the number of live prices, that many pairs of
--   model and price, then the ids of jobs passed over (never reused).
-- Returns {'send'}, {'reuse', other id}, {'not_sent'}, {'hold'}, {'missing'}, or
--   {'limit' or 'usd_limit', as `spending_reply` makes it}.
-- Runs after spending.lua, whose functions it calls.
local job, fp = KEYS[1], KEYS[2]
local id, fingerprint, now, window = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reuse_finished, may_send = ARGV[7] == '1', ARGV[8] == '1'
local usd_limit, prices = tonumber(ARGV[9]), {}
local priced = tonumber(ARGV[10])
for i = 0, priced - 1 do prices[ARGV[11 + 2 * i]] = tonumber(ARGV[12 + 2 * i]) end
local passed_over_from = 11 + 2 * priced
if redis.call('EXISTS', job) == 0 then return {'missing'} end
if window > 0 then
  local other = redis.call('GET', fp)
  for i = passed_over_from, #ARGV do
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
if ARGV[5] ~= '' or usd_limit then
  local used, models, order, used_usd = spending(ARGV[6])
  if ARGV[5] ~= '' then
    local decided = verdict(tonumber(ARGV[5]), used, models)
    if decided == 'over' then return spending_reply('limit', used, models, order, used_usd) end
    if decided == 'hold' then return {'hold'} end
  end
  if usd_limit then
    local model = redis.call('HGET', job, 'model') or OLDER_MODEL
    local decided = verdict_usd(usd_limit, prices, model, used_usd, models)
    if decided == 'over' then
      return spending_reply('usd_limit', used, models, order, used_usd)
    end
    if decided == 'hold' then return {'hold'} end
  end
end
redis.call('HSET', job, 'state', 'running', 'sent', '1', 'fingerprint', fingerprint,
  'reuse_window_ms', window, 'updated_ms', now)
redis.call('HDEL', job, 'reused_from')
if window > 0 then redis.call('SET', fp, id) end
redis.call('SADD', 'reve:in_flight', id)
return {'send'}
