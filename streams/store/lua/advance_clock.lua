-- Move partitions' event clocks forward to ARGV[1] (epoch seconds), never back: for each partition
-- mark hash in KEYS, clock = max(stored clock, ARGV[1]). The offset field is left as it is (absent
-- on a partition that has applied nothing yet, which commit.lua reads as "none yet").
-- One script call: every partition moves at once. Returns each partition's clock afterwards.
local target = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local stored = redis.call('HGET', key, 'clock')
  if stored and tonumber(stored) and tonumber(stored) >= target then
    out[i] = stored
  else
    redis.call('HSET', key, 'clock', ARGV[1])
    out[i] = ARGV[1]
  end
end
return out
