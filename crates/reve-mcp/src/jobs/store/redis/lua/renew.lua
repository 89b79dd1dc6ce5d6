-- Renews a run's leases, never one another run has taken.
-- ARGV: the run, the lease (ms), then the ids of its jobs.
for i = 3, #ARGV do
  local lease = 'reve:lease:' .. ARGV[i]
  local holder = redis.call('GET', lease)
  if not holder or holder == ARGV[1] then
    redis.call('SET', lease, ARGV[1], 'PX', ARGV[2])
  end
end
return 1
