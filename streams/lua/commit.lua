-- Commit one partition's batch atomically: customer states, due times, outbox entries and
-- the partition's applied offset and event clock, all or nothing.
--
-- Fenced: applies only if the stored offset still equals ARGV[1] (what the worker read),
-- so a worker that lost the partition cannot overwrite the new owner's work.
--
-- KEYS[1] offset hash (fields offset, clock)   KEYS[2] outbox list   KEYS[3] due zset
-- KEYS[4..3+n] customer state keys
-- ARGV[1] expected offset ('' = none yet)   ARGV[2] new offset   ARGV[3] new clock
-- ARGV[4] n   ARGV[5..4+n] state JSON for KEYS[4..]
-- then m, followed by m pairs (customer id, due score or '-' to remove)
-- then the outbox entries, appended in order.
-- Returns {1, outbox length before the append} or {0, stored offset} when fenced.
local current = redis.call('HGET', KEYS[1], 'offset') or ''
if current ~= ARGV[1] then
  return {0, current}
end
local n = tonumber(ARGV[4])
for i = 1, n do
  redis.call('SET', KEYS[3 + i], ARGV[4 + i])
end
local pos = 5 + n
local m = tonumber(ARGV[pos])
pos = pos + 1
for _ = 1, m do
  local member, score = ARGV[pos], ARGV[pos + 1]
  if score == '-' then
    redis.call('ZREM', KEYS[3], member)
  else
    redis.call('ZADD', KEYS[3], score, member)
  end
  pos = pos + 2
end
local leftover = redis.call('LLEN', KEYS[2])
while pos <= #ARGV do
  local last = math.min(pos + 999, #ARGV)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, pos, last))
  pos = last + 1
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'clock', ARGV[3])
return {1, leftover}
