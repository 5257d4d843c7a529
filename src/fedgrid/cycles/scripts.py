"""Lua sources of the Redis scripts that change live cycle state atomically."""

from __future__ import annotations

# Every script gets the key prefix as ARGV[1] and builds its keys from it, so
# all of a grid's live state sits under one prefix on one Redis (not a cluster).
# Times come from Redis' own clock so replicas on different hosts agree.
# Scripts answer with one JSON object; Redis would truncate bare Lua numbers.
_HELPERS = """
local P = ARGV[1]
local DEADLINES = P .. 'cm:deadlines'
local CLOSING = P .. 'cm:closing'
-- Secure cycles waiting for admission to close, and those running SecAgg.
local ADMISSION = P .. 'cm:sa_admission'
local RUNNING = P .. 'cm:sa_running'
local RETENTION = tonumber(ARGV[2])

local function job_key(id) return P .. 'cm:job:' .. id end
local function cycle_key(id) return P .. 'cm:cycle:' .. id end
local function request_key(k) return P .. 'cm:key:' .. k end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function num(value) return tonumber(value) or 0 end
local function stamp(t) return string.format('%.6f', t) end

local function read(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local out = {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

local function open_cycle(job_id, job, cycle_id, t)
  local number = num(job.number) + 1
  local deadline = t + num(job.cycle_length)
  redis.call('HSET', cycle_key(cycle_id),
    'job_id', job_id, 'number', number, 'state', 'open', 'admitted', 0,
    'reports', 0, 'opened_at', stamp(t), 'deadline', stamp(deadline),
    'closed_at', '', 'trained_from', job.checkpoint, 'checkpoint', 0,
    'close_reason', '')
  redis.call('ZADD', DEADLINES, deadline, cycle_id)
  local admission = num(job.secure_admission)
  if admission > 0 then
    redis.call('ZADD', ADMISSION, t + admission * num(job.cycle_length), cycle_id)
  end
  redis.call('HSET', job_key(job_id), 'cycle_id', cycle_id, 'number', number,
    'attempts', num(job.attempts) + 1)
  return cycle_id
end

local function finish_job(job_id, reason, t)
  redis.call('HSET', job_key(job_id), 'state', 'finished',
    'finish_reason', reason, 'finished_at', stamp(t))
end

-- After a cycle ended: open the next one, or finish the job. Returns the id of
-- the opened cycle, or '' when the job finished.
local function advance(job_id, next_id, t)
  local job = read(job_key(job_id))
  local completed, wanted = num(job.completed), num(job.num_cycles)
  local attempts, limit = num(job.attempts), num(job.max_attempts)
  if wanted > 0 and completed >= wanted then
    finish_job(job_id, 'num_cycles reached: ' .. completed .. ' of ' .. wanted ..
      ' cycles produced a checkpoint', t)
    return ''
  end
  local allowed = num(job.privacy_cycles)
  if allowed > 0 and completed >= allowed then
    finish_job(job_id, job.privacy_stop_reason, t)
    return ''
  end
  if limit > 0 and attempts >= limit then
    finish_job(job_id, 'max_cycle_attempts reached: ' .. attempts ..
      ' cycles ran and ' .. completed .. ' of ' .. wanted ..
      ' produced a checkpoint', t)
    return ''
  end
  return open_cycle(job_id, job, next_id, t)
end

-- A cycle that ended for good keeps its live keys for RETENTION seconds; its
-- history stays in PostgreSQL.
local function retire(cycle_id)
  local ckey = cycle_key(cycle_id)
  for _, k in ipairs(redis.call('HVALS', ckey .. ':workers')) do
    redis.call('EXPIRE', request_key(k), RETENTION)
  end
  redis.call('EXPIRE', ckey, RETENTION)
  redis.call('EXPIRE', ckey .. ':workers', RETENTION)
  redis.call('EXPIRE', ckey .. ':reports', RETENTION)
end

local function end_cycle(cycle_id, state, reason, t)
  local ckey = cycle_key(cycle_id)
  redis.call('HSET', ckey, 'state', state, 'close_reason', reason)
  if (redis.call('HGET', ckey, 'closed_at') or '') == '' then
    redis.call('HSET', ckey, 'closed_at', stamp(t))
  end
  redis.call('ZREM', DEADLINES, cycle_id)
  redis.call('ZREM', ADMISSION, cycle_id)
  redis.call('ZREM', RUNNING, cycle_id)
  if state == 'closing' then
    redis.call('ZADD', CLOSING, t, cycle_id)
  else
    redis.call('ZREM', CLOSING, cycle_id)
    retire(cycle_id)
  end
end
"""

# ARGV: prefix, retention, job_id, canonical config JSON, checkpoint, first
# cycle id, then config field/value pairs.
REGISTER_JOB = (
    _HELPERS
    + """
local job_id = ARGV[3]
local existing = read(job_key(job_id))
if existing then
  if existing.config ~= ARGV[4] then
    return cjson.encode({outcome = 'conflict'})
  end
  return cjson.encode({outcome = 'exists', cycle_id = existing.cycle_id})
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', job_key(job_id), 'config', ARGV[4], 'checkpoint', ARGV[5],
  'state', 'running', 'finish_reason', '', 'completed', 0, 'attempts', 0,
  'number', 0, unpack(fields))
open_cycle(job_id, read(job_key(job_id)), ARGV[6], clock())
return cjson.encode({outcome = 'registered', cycle_id = ARGV[6]})
"""
)

# ARGV: prefix, retention, job_id, worker_id, download kbit/s, upload kbit/s,
# a uniform draw in [0, 1), the request key to hand out on admission.
REQUEST_CYCLE = (
    _HELPERS
    + """
local job_id, worker = ARGV[3], ARGV[4]
local job = read(job_key(job_id))
if not job then return cjson.encode({outcome = 'unknown_job'}) end
local t = clock()
local length = num(job.cycle_length)
local brief = math.min(math.max(length / 30, 1), 60)

local function reject(reason, retry, detail)
  return cjson.encode({outcome = 'rejected', reason = reason,
    retry = math.max(retry, 1), detail = detail or ''})
end

if job.state == 'finished' then return reject('JOB_FINISHED', 3600) end
local cycle_id = job.cycle_id
local ckey = cycle_key(cycle_id)
local cycle = read(ckey)
if not cycle or cycle.state ~= 'open' or t >= num(cycle.deadline) then
  return reject('NO_OPEN_CYCLE', brief)
end
local remaining = num(cycle.deadline) - t
local number = num(cycle.number)
-- A secure cycle admits until it fills or its admission time ends; then its
-- secure aggregation run starts with the admitted workers.
local secure = num(job.secure_admission) > 0
if secure and ((cycle.phase or '') ~= ''
    or t >= num(cycle.opened_at) + num(job.secure_admission) * length) then
  return reject('ADMISSION_CLOSED', remaining)
end

local held = redis.call('HGET', ckey .. ':workers', worker)
if held then
  local reported = redis.call('HGET', request_key(held), 'reported')
  -- a worker that has reported waits for the next cycle, which opens as soon
  -- as this one fills up, often well before its deadline
  if reported == '1' then
    return reject('ALREADY_ASSIGNED', math.min(brief, remaining), 'reported')
  end
  return reject('ALREADY_ASSIGNED', remaining, 'holding')
end
if num(ARGV[5]) < num(job.minimum_download_speed)
    or num(ARGV[6]) < num(job.minimum_upload_speed) then
  return reject('SPEED_TOO_LOW', remaining)
end
local reuse = num(job.do_not_reuse_workers_until_cycle)
if reuse > 0 then
  local last = redis.call('HGET', job_key(job_id) .. ':last', worker)
  if last and number < num(last) + reuse then
    local wait = remaining + (num(last) + reuse - number - 1) * length
    return reject('WORKER_RECENTLY_USED', wait, tostring(num(last) + reuse))
  end
end
if num(cycle.admitted) >= num(job.max_workers) then
  return reject('CYCLE_FULL', math.min(brief, remaining))
end
if job.pool_selection == 'random'
    and num(ARGV[7]) >= num(job.random_admission_probability) then
  return reject('NOT_SELECTED', math.min(brief, remaining))
end

local key = ARGV[8]
local admitted = redis.call('HINCRBY', ckey, 'admitted', 1)
redis.call('HSET', ckey .. ':workers', worker, key)
redis.call('HSET', request_key(key), 'job_id', job_id, 'cycle_id', cycle_id,
  'worker_id', worker, 'reported', 0)
if reuse > 0 then
  redis.call('HSET', job_key(job_id) .. ':last', worker, number)
end
return cjson.encode({outcome = 'accepted', cycle_id = cycle_id,
  number = number, checkpoint = num(cycle.trained_from),
  deadline = cycle.deadline, opened_at = cycle.opened_at,
  admitted = admitted,
  filled = secure and admitted >= num(job.max_workers)})
"""
)

# ARGV: prefix, retention, request key, worker id, report metadata JSON.
SUBMIT_REPORT = (
    _HELPERS
    + """
local rkey = request_key(ARGV[3])
local held = read(rkey)
if not held then return cjson.encode({status = 'UNKNOWN_KEY'}) end
local cycle_id = held.cycle_id
local function answer(status)
  return cjson.encode({status = status, cycle_id = cycle_id})
end
if held.worker_id ~= ARGV[4] then return answer('WRONG_WORKER') end
if held.reported == '1' then return answer('ALREADY_REPORTED') end
local ckey = cycle_key(cycle_id)
local cycle = read(ckey)
if not cycle then return answer('CYCLE_CLOSED') end
local t = clock()
if t > num(cycle.deadline) then return answer('DEADLINE_PASSED') end
if cycle.state ~= 'open' then return answer('CYCLE_CLOSED') end
local job = read(job_key(held.job_id))
if num(job.secure_admission) > 0 then return answer('SECURE_CYCLE') end

local meta = cjson.decode(ARGV[5])
meta.accepted_at = stamp(t)
meta.worker_id = held.worker_id
redis.call('HSET', rkey, 'reported', 1)
redis.call('HSET', ckey .. ':reports', ARGV[3], cjson.encode(meta))
local reports = redis.call('HINCRBY', ckey, 'reports', 1)
local closed = 0
if reports >= num(job.max_diffs) then
  end_cycle(cycle_id, 'closing', 'max_diffs reached with ' .. reports ..
    ' reports', t)
  closed = 1
end
return cjson.encode({status = 'ACCEPTED', cycle_id = cycle_id,
  closed = closed, accepted_at = meta.accepted_at})
"""
)

# ARGV: prefix, retention, cycle id, id for the next cycle should one open.
CLOSE_AT_DEADLINE = (
    _HELPERS
    + """
local cycle_id = ARGV[3]
local cycle = read(cycle_key(cycle_id))
if not cycle or cycle.state ~= 'open' then
  redis.call('ZREM', DEADLINES, cycle_id)
  return cjson.encode({outcome = 'none'})
end
local t = clock()
if t < num(cycle.deadline) then return cjson.encode({outcome = 'none'}) end
local job = read(job_key(cycle.job_id))
local reports, needed = num(cycle.reports), num(job.min_diffs)
if reports >= needed then
  end_cycle(cycle_id, 'closing', 'deadline reached with ' .. reports ..
    ' reports', t)
  return cjson.encode({outcome = 'closing', job_id = cycle.job_id})
end
end_cycle(cycle_id, 'failed', 'deadline reached with ' .. reports ..
  ' of min_diffs ' .. needed .. ' reports; closed without aggregation', t)
local opened = advance(cycle.job_id, ARGV[4], t)
return cjson.encode({outcome = 'failed', job_id = cycle.job_id,
  opened = opened})
"""
)

# ARGV: prefix, retention, cycle id, 'completed' or 'failed', checkpoint
# number, reason, id for the next cycle should one open.
FINISH_AGGREGATION = (
    _HELPERS
    + """
local cycle_id, outcome = ARGV[3], ARGV[4]
local cycle = read(cycle_key(cycle_id))
if not cycle then return cjson.encode({outcome = 'unknown_cycle'}) end
local reply = {job_id = cycle.job_id, state = cycle.state,
  checkpoint = num(cycle.checkpoint)}
if cycle.state == 'open' then
  reply.outcome = 'not_closed'
  return cjson.encode(reply)
end
if cycle.state ~= 'closing' then
  reply.outcome = 'duplicate'
  return cjson.encode(reply)
end
local t = clock()
if outcome == 'completed' then
  local checkpoint = num(ARGV[5])
  redis.call('HSET', cycle_key(cycle_id), 'checkpoint', checkpoint)
  redis.call('HSET', job_key(cycle.job_id), 'checkpoint', checkpoint)
  redis.call('HINCRBY', job_key(cycle.job_id), 'completed', 1)
  end_cycle(cycle_id, 'completed', cycle.close_reason, t)
else
  end_cycle(cycle_id, 'failed', 'aggregation failed: ' .. ARGV[6], t)
end
reply.outcome = outcome
reply.opened = advance(cycle.job_id, ARGV[7], t)
return cjson.encode(reply)
"""
)

# ARGV: prefix, retention, 'deadlines', 'closing', 'sa_admission' or
# 'sa_running', seconds of grace, limit.
# Cycle ids whose score is older than now minus the grace.
DUE = (
    _HELPERS
    + """
local sets = {closing = CLOSING, deadlines = DEADLINES,
  sa_admission = ADMISSION, sa_running = RUNNING}
local set = sets[ARGV[3]] or DEADLINES
local cutoff = clock() - num(ARGV[4])
return cjson.encode(redis.call('ZRANGEBYSCORE', set, '-inf', cutoff,
  'LIMIT', 0, num(ARGV[5])))
"""
)

# ARGV: prefix, retention, cycle id, seconds of grace. Claims a closing cycle
# whose aggregation went quiet, so exactly one replica enqueues it again.
CLAIM_STALE = (
    _HELPERS
    + """
local cycle_id = ARGV[3]
local score = redis.call('ZSCORE', CLOSING, cycle_id)
local state = redis.call('HGET', cycle_key(cycle_id), 'state')
if not score or state ~= 'closing' then
  redis.call('ZREM', CLOSING, cycle_id)
  return 0
end
local t = clock()
if num(score) > t - num(ARGV[4]) then return 0 end
redis.call('ZADD', CLOSING, t, cycle_id)
return 1
"""
)

# ARGV: prefix, retention, cycle id, id for the next cycle should one open.
# Ends a secure cycle's admission once it filled or its admission time passed:
# the cycle keeps its admitted workers for the run, or fails below min_diffs.
START_SECURE = (
    _HELPERS
    + """
local cycle_id = ARGV[3]
local ckey = cycle_key(cycle_id)
local cycle = read(ckey)
if not cycle or cycle.state ~= 'open' or (cycle.phase or '') ~= '' then
  redis.call('ZREM', ADMISSION, cycle_id)
  return cjson.encode({outcome = 'none'})
end
local job = read(job_key(cycle.job_id))
local t = clock()
local length = num(job.cycle_length)
local ends = num(cycle.opened_at) + num(job.secure_admission) * length
if t < ends and num(cycle.admitted) < num(job.max_workers) then
  return cjson.encode({outcome = 'none'})
end
redis.call('ZREM', ADMISSION, cycle_id)
local workers = redis.call('HKEYS', ckey .. ':workers')
local needed = math.max(num(job.min_diffs), 1)
if #workers < needed then
  end_cycle(cycle_id, 'failed', 'admission closed with ' .. #workers ..
    ' of min_diffs ' .. needed .. ' workers; closed without aggregation', t)
  local opened = advance(cycle.job_id, ARGV[4], t)
  return cjson.encode({outcome = 'failed', job_id = cycle.job_id,
    opened = opened})
end
-- The run's rounds end within one cycle_length from now; the plain deadline
-- close stays as a safety net a little later.
local deadline = t + length
redis.call('HSET', ckey, 'phase', 'secagg', 'deadline', stamp(deadline))
redis.call('ZADD', DEADLINES, deadline + math.max(5, length * 0.1), cycle_id)
redis.call('ZADD', RUNNING, deadline, cycle_id)
return cjson.encode({outcome = 'started', job_id = cycle.job_id,
  workers = workers, length = length})
"""
)

# ARGV: prefix, retention, cycle id, 'done' or 'failed', number of unmasked
# inputs, failure reason, id for the next cycle should one open. Ends a secure
# cycle's run: to aggregation, or failed with the reason.
END_SECURE = (
    _HELPERS
    + """
local cycle_id = ARGV[3]
local ckey = cycle_key(cycle_id)
local cycle = read(ckey)
if not cycle or cycle.state ~= 'open' or cycle.phase ~= 'secagg' then
  redis.call('ZREM', RUNNING, cycle_id)
  return cjson.encode({outcome = 'none'})
end
local job = read(job_key(cycle.job_id))
local t = clock()
local inputs = num(ARGV[5])
local reason
if ARGV[4] == 'done' then
  redis.call('HSET', ckey, 'reports', inputs)
  local needed = num(job.min_diffs)
  if inputs >= needed then
    end_cycle(cycle_id, 'closing', 'secure aggregation finished with ' ..
      inputs .. ' masked inputs', t)
    return cjson.encode({outcome = 'closing', job_id = cycle.job_id})
  end
  reason = 'secure aggregation finished with ' .. inputs .. ' of min_diffs ' ..
    needed .. ' masked inputs; closed without aggregation'
else
  reason = 'secure aggregation failed: ' .. ARGV[6]
end
end_cycle(cycle_id, 'failed', reason, t)
local opened = advance(cycle.job_id, ARGV[7], t)
return cjson.encode({outcome = 'failed', job_id = cycle.job_id,
  opened = opened})
"""
)
