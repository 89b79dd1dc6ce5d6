-- Takes a failed job whose paid result is unsaved back up for a run.
-- KEYS: the job's hash.
-- ARGV: id, the taking run, its pid, now (ms), the lease (ms). Returns 1 when taken.
local job = KEYS[1]
local s = redis.call('HMGET', job, 'state', 'unsaved')
if s[1] ~= 'failed' or s[2] ~= '1' then return 0 end
redis.call('HSET', job, 'state', 'running', 'owner_run', ARGV[2], 'owner_pid', ARGV[3],
  'updated_ms', ARGV[4], 'unsaved', '0')
redis.call('HDEL', job, 'finished_ms', 'error')
redis.call('SADD', 'reve:unfinished', ARGV[1])
redis.call('SET', 'reve:lease:' .. ARGV[1], ARGV[2], 'PX', ARGV[5])
return 1
