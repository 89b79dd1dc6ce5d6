-- Records a newer revision of a job's generation; an older one than the hash has is ignored.
-- KEYS: the job's hash.
-- ARGV: now (ms), revision, payload.
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then return 0 end
if tonumber(ARGV[2]) <= tonumber(redis.call('HGET', job, 'revision') or '0') then return 0 end
redis.call('HSET', job, 'updated_ms', ARGV[1], 'revision', ARGV[2], 'payload', ARGV[3])
return 1
