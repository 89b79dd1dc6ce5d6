-- Takes over every unfinished job whose lease lapsed.
-- ARGV: the taking run, its pid, the lease (ms), now (ms). Returns the ids taken.
local adopted = {}
for _, id in ipairs(redis.call('SMEMBERS', 'reve:unfinished')) do
  local lease = 'reve:lease:' .. id
  if redis.call('EXISTS', lease) == 0 then
    local job = 'reve:job:' .. id
    local state = redis.call('HGET', job, 'state')
    if state == 'queued' or state == 'running' then
      redis.call('SET', lease, ARGV[1], 'PX', ARGV[3])
      redis.call('HSET', job, 'owner_run', ARGV[1], 'owner_pid', ARGV[2], 'updated_ms', ARGV[4])
      table.insert(adopted, id)
    else
      redis.call('SREM', 'reve:unfinished', id)
    end
  end
end
return adopted
