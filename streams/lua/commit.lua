-- Commit one partition's batch atomically: customer states, due times, outbox entries and
-- the partition's applied offset and event clock, all or nothing.
--
-- Fenced: applies only if the stored offset still equals ARGV[1] (what the worker read),
-- so a worker that lost the partition cannot overwrite the new owner's work.
--
-- KEYS[1] offset hash (fields offset, clock)   KEYS[2] outbox list   KEYS[3] due zset
-- KEYS[4..] customer state keys
-- ARGV[1] expected offset ('' = none yet)   ARGV[2] new offset   ARGV[3] new clock
-- ARGV[4] the state JSON of KEYS[4..], joined by newlines (compact JSON has none of its own)
-- ARGV[5] due times as a JSON array of [customer id, score or null to remove]
-- ARGV[6] outbox entries (JSON), joined by newlines, appended in order
-- Few, large arguments: packing thousands of small ones cost the client more than the work.
-- Returns {1, outbox length before the append} or {0, stored offset} when fenced.
local current = redis.call('HGET', KEYS[1], 'offset') or ''
if current ~= ARGV[1] then
  return {0, current}
end

local function lines(blob)
  local out, start = {}, 1
  if blob == '' then return out end
  while true do
    local i = string.find(blob, '\n', start, true)
    if not i then
      out[#out + 1] = string.sub(blob, start)
      return out
    end
    out[#out + 1] = string.sub(blob, start, i - 1)
    start = i + 1
  end
end

local states = lines(ARGV[4])
for i = 1, #states do
  redis.call('SET', KEYS[3 + i], states[i])
end
for _, item in ipairs(cjson.decode(ARGV[5])) do
  if item[2] == cjson.null then
    redis.call('ZREM', KEYS[3], item[1])
  else
    redis.call('ZADD', KEYS[3], item[2], item[1])
  end
end
local leftover = redis.call('LLEN', KEYS[2])
local entries = lines(ARGV[6])
for first = 1, #entries, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(entries, first, math.min(first + 999, #entries)))
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'clock', ARGV[3])
return {1, leftover}
