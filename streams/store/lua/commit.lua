-- Commit one partition's batch atomically: customer states, due times, outbox entries and
-- the partition's applied offset and event clock, all or nothing.
--
-- Fenced: applies only if the stored offset still equals ARGV[1] (what the worker read),
-- so a worker that lost the partition cannot overwrite the new owner's work.
--
-- KEYS[1] offset hash (fields offset, clock)   KEYS[2] outbox list   KEYS[3] due zset
-- KEYS[4 .. 3+S] the S customer state keys, then KEYS[4+S ..] the history keys of customers with changes
-- (every key of one input partition, under one hash tag: a Redis Cluster runs this on one node)
-- ARGV[1] expected offset ('' = none yet)   ARGV[2] new offset
-- ARGV[3] new clock: stored as max(stored clock, ARGV[3]), so the clock never moves backwards
-- ARGV[4] the state JSON of KEYS[4..], joined by newlines (compact JSON has none of its own)
-- ARGV[5] due times as a JSON array of [customer id, score or null to remove]
-- ARGV[6] outbox entries (topic TAB key TAB JSON), joined by newlines, appended in order
-- ARGV[7] the history entries (built by the worker), joined by newlines, in order
-- ARGV[8] a JSON array: how many of those entries go to each history key, in KEYS order; each key's
--         string gets them in front (latest first), cut to ARGV[10] entries
-- ARGV[9] this commit's writer token, kept in the mark's `writer` field: a worker trusts the states
--         it remembers of this partition only while the mark still holds its own last token
-- ARGV[10] how many history entries each customer keeps
-- ARGV[11] how many keys of erased customers follow the history keys (their state, history and quarantine
--          keys): deleted first, so what the batch wrote of the customer after their erasure (a new
--          profile) is what remains
-- Few, large arguments: packing thousands of small ones cost the client more than the work.
-- Returns {1, outbox length before the append, the writer token it replaced ('' if none)}
-- or {0, stored offset} when fenced.
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

-- Many keys or members per call: one call into Redis per state or due time was most of the
-- script's time (and the worker waits for it). CHUNK keeps each call's argument list short.
local CHUNK = 500
local states = lines(ARGV[4])
local erased = tonumber(ARGV[11] or '0') or 0
if erased > 0 then
  local first_erased = 4 + #states + #cjson.decode(ARGV[8])
  for first = first_erased, first_erased + erased - 1, CHUNK do
    redis.call('DEL', unpack(KEYS, first, math.min(first + CHUNK - 1, first_erased + erased - 1)))
  end
end
for first = 1, #states, CHUNK do
  local args = {}
  for i = first, math.min(first + CHUNK - 1, #states) do
    args[#args + 1] = KEYS[3 + i]
    args[#args + 1] = states[i]
  end
  redis.call('MSET', unpack(args))
end
local to_add, to_remove = {}, {}
for _, item in ipairs(cjson.decode(ARGV[5])) do
  if item[2] == cjson.null then
    to_remove[#to_remove + 1] = item[1]
  else
    to_add[#to_add + 1] = item[2]
    to_add[#to_add + 1] = item[1]
  end
end
for first = 1, #to_add, 2 * CHUNK do
  redis.call('ZADD', KEYS[3], unpack(to_add, first, math.min(first + 2 * CHUNK - 1, #to_add)))
end
for first = 1, #to_remove, CHUNK do
  redis.call('ZREM', KEYS[3], unpack(to_remove, first, math.min(first + CHUNK - 1, #to_remove)))
end
local leftover = redis.call('LLEN', KEYS[2])
local entries = lines(ARGV[6])
for first = 1, #entries, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(entries, first, math.min(first + 999, #entries)))
end
-- A history is one string of entries joined by newlines, latest first, at most ARGV[10] of them: a string
-- costs Redis about 80 bytes less than a list of the same entries (streams/store/history.py). A history
-- an earlier version kept as a list is read and written back as a string.
local kept = tonumber(ARGV[10])
local counts = cjson.decode(ARGV[8])
local changes = lines(ARGV[7])
local next_change = 1
for i, count in ipairs(counts) do  -- each history key's changes, in order: the latest ends up first
  local key = KEYS[3 + #states + i]
  local entries = {}
  for j = next_change + count - 1, next_change, -1 do
    if #entries >= kept then break end
    entries[#entries + 1] = changes[j]
  end
  next_change = next_change + count
  if #entries < kept then
    local stored = redis.pcall('GET', key)
    if type(stored) == 'table' and stored.err then  -- a list, as earlier versions kept it
      local older = redis.call('LRANGE', key, 0, kept - 1 - #entries)
      redis.call('DEL', key)
      for _, e in ipairs(older) do entries[#entries + 1] = e end
    elseif stored then
      for _, e in ipairs(lines(stored)) do
        if #entries >= kept then break end
        entries[#entries + 1] = e
      end
    end
  end
  redis.call('SET', key, table.concat(entries, '\n'))
end
-- The clock never moves back: `journey advance-clock` may have moved it on since this batch read it.
local stored_clock = redis.call('HGET', KEYS[1], 'clock')
local clock = ARGV[3]
if stored_clock and tonumber(stored_clock) and tonumber(stored_clock) > tonumber(clock) then
  clock = stored_clock
end
local previous_writer = redis.call('HGET', KEYS[1], 'writer') or ''
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'clock', clock, 'writer', ARGV[9])
return {1, leftover, previous_writer}
