/**
 * The store on Redis, for several instances behind a load balancer. Every change is one Lua
 * script, so Redis runs it whole or not at all, with nothing interleaved:
 *
 * - `commit` checks the version (compare-and-set), the inbound idempotency key and, when a
 *   worker's cursor moves with it, that worker's lease; only when all three pass does it write the
 *   conversation header, append the messages and the work, make the destinations due, apply the
 *   index writes, and publish a `ChangeNotice` (the committing instance tells its own listeners as
 *   soon as the script returns, and skips its echo). Every check comes before the first write (the
 *   last one, the inbound key's SET NX, writes only when it passes): a Redis script that fails
 *   halfway is not rolled back, so nothing that can fail runs after a write.
 * - Work is a per-conversation log (a list; seq = 1-based position) plus, per destination, a due
 *   sorted set (score = "not before", epoch ms; a leased conversation's score is its lease
 *   expiry), a lease hash (conversation → token), a cursor hash (conversation → JSON `Cursor`)
 *   and a "last addressed seq" hash, so "is anything left after the cursor" is one lookup.
 *   The finishes asked for in one turn of the event loop (each worker ends every batch with one)
 *   go as one script call, each with its own outcome.
 * - Time inside scripts is Redis's own clock (`TIME`), so instances with skewed clocks agree on
 *   when a lease expires.
 *
 * Key layout, with `p` = `<namespace>:`
 *   p conv:<id>          hash   header (conversation JSON without messages/version), version
 *   p msgs:<id>          list   message JSON, appended only
 *   p log:<id>           list   WorkItem JSON, appended only
 *   p due:<dest>         zset   conversation id → due/lease-expiry ms
 *   p lease:<dest>       hash   conversation id → lease token
 *   p cursor:<dest>      hash   conversation id → Cursor JSON
 *   p last:<dest>        hash   conversation id → last seq addressed to <dest>
 *   p idx:<key>          string index value (optional PX)
 *   p members:<key>      set    index members
 *   p inbound:<key>      string conversation id, then a space and the message id when the commit named it (PX ttl)
 *   p changes            pub/sub channel of ChangeNotice JSON
 * Adapter data (kv, once, counters, locks) lives under `<namespace>::` through `AdapterData`.
 *
 * The scripts compute key names from the prefix, so this targets one Redis (or a Sentinel-managed
 * primary), not Redis Cluster.
 */
import { createHash, randomBytes } from 'node:crypto';
import { DuplicateInboundError, LeaseLostError, StoreUnavailableError, VersionConflictError } from '../errors.ts';
import type { Conversation, Message } from '../model.ts';
import { connectRedis, redisAdapterData, type AdapterData } from './keyv-store.ts';
import { PatientWrites } from './patience.ts';
import { commitHeader, type ChangeNotice, type Commit, type CommitResult, type Cursor, type KeyValue, type Lease, type Patience, type Store, type WorkItem, type WorkQueue } from './store.ts';

type RedisClient = Awaited<ReturnType<typeof connectRedis>>;

/** Helpers every script starts with. */
const PRELUDE = `
local function int(n) return string.format('%d', n) end
-- Redis's clock, read once per script and only by a script that needs it.
local nowMs
local function clock()
  if not nowMs then
    local t = redis.call('TIME')
    nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return nowMs
end
-- Cursor and last-seq fields a script read or wrote (key -> id -> value, false when absent), so
-- helpers that need the same field again do not ask Redis twice. Every write to them goes
-- through remember.
local fields = {}
local function remember(key, id, value)
  local t = fields[key]
  if not t then t = {} fields[key] = t end
  t[id] = value
end
local function field(key, id)
  local t = fields[key]
  local v = t and t[id]
  if v == nil then
    v = redis.call('HGET', key, id)
    remember(key, id, v)
  end
  return v
end
local function lastSeq(key, id)
  return tonumber(field(key, id) or '0')
end
-- Cursor JSON -> { done, attempt }: cjson.decode costs more than an HGET, so once per script.
local cursors = {}
local function readCursor(key, id)
  local raw = field(key, id)
  if not raw then return 0, nil end
  local c = cursors[raw]
  if not c then
    local decoded = cjson.decode(raw)
    local attempt = decoded.attempt
    if type(attempt) ~= 'table' then attempt = nil end
    c = { done = tonumber(decoded.done) or 0, attempt = attempt }
    cursors[raw] = c
  end
  return c.done, c.attempt
end
local function writeCursor(key, id, done, attempt)
  -- What decoding the JSON would give back (whole numbers, only these fields).
  local c = { done = tonumber(int(done)) }
  local json = '{"done":' .. int(done)
  if attempt then
    c.attempt = { seq = tonumber(int(attempt.seq)), count = tonumber(int(attempt.count)), since = tonumber(int(attempt.since)) }
    json = json .. ',"attempt":{"seq":' .. int(attempt.seq) .. ',"count":' .. int(attempt.count) .. ',"since":' .. int(attempt.since)
    if attempt.upTo then
      c.attempt.upTo = tonumber(int(attempt.upTo))
      json = json .. ',"upTo":' .. int(attempt.upTo)
    end
    json = json .. '}'
  end
  json = json .. '}'
  redis.call('HSET', key, id, json)
  remember(key, id, json)
  cursors[json] = c
  return json
end
-- RPUSH of values[from..to], in chunks that stay within Lua's unpack limit.
local function pushAll(key, values, from, to)
  for i = from, to, 500 do
    redis.call('RPUSH', key, unpack(values, i, math.min(i + 499, to)))
  end
end
-- The cursor JSON (or '') and up to limit items after it addressed to dest, and the first one's
-- seq. tail (optional): the items this script appended to the log ({ from = length before,
-- items = { { json, to, seq }... } }), used instead of reading them back.
local function pendingFor(cursorKey, lastKey, logKey, id, dest, limit, tail, from)
  local raw = field(cursorKey, id)
  local done = readCursor(cursorKey, id)
  local last = lastSeq(lastKey, id)
  local out = {}
  local firstSeq, lastOut
  local i = done
  -- from: nothing for dest lies before it (the caller knows), so the log is not read from done.
  if from and from > i then i = from end
  while #out < limit and i < last do
    if tail and i >= tail.from then
      local e = tail.items[i - tail.from + 1]
      if not e then break end
      for _, d in ipairs(e.to) do
        if d == dest then
          out[#out + 1] = e.json
          firstSeq = firstSeq or e.seq
          lastOut = e.seq
          break
        end
      end
      i = i + 1
    else
      local stop = math.min(i + 100, last)
      if tail and tail.from < stop then stop = tail.from end
      local chunk = redis.call('LRANGE', logKey, i, stop - 1)
      if #chunk == 0 then break end
      for _, e in ipairs(chunk) do
        local item = cjson.decode(e)
        for _, d in ipairs(item.to) do
          if d == dest then
            out[#out + 1] = e
            firstSeq = firstSeq or tonumber(item.seq)
            lastOut = tonumber(item.seq)
            break
          end
        end
        if #out >= limit then break end
      end
      i = i + #chunk
    end
  end
  return { raw or '', out }, firstSeq, lastOut
end
-- The last item an attempt record covers (upTo, else seq alone).
local function attemptEnd(attempt)
  return tonumber(attempt.upTo or attempt.seq)
end
-- Records attempts beginning on seq..upTo, as beginAttempts in src/store/attempts.ts: a retry of
-- an item the last record covered counts on, and covers what that record covered but no more.
-- Returns the cursor JSON.
local function beginAttempt(cursorKey, id, seq, upTo)
  local done, attempt = readCursor(cursorKey, id)
  upTo = upTo or seq
  if attempt and tonumber(attempt.seq) <= seq and seq <= attemptEnd(attempt) then
    local last = attemptEnd(attempt)
    local count = 2
    if tonumber(attempt.seq) == seq then count = tonumber(attempt.count) + 1 end
    attempt = { seq = seq, count = count, since = tonumber(attempt.since) }
    if last > seq then attempt.upTo = last end
  else
    attempt = { seq = seq, count = 1, since = clock() }
    if upTo > seq then attempt.upTo = upTo end
  end
  return writeCursor(cursorKey, id, done, attempt)
end
-- pendingFor, and when begin is set, attempts recorded on the batch's items in one record ({ cursor, items, 1 }).
local function pendingBegun(cursorKey, lastKey, logKey, id, dest, limit, begin, tail, from)
  local pending, firstSeq, lastOut = pendingFor(cursorKey, lastKey, logKey, id, dest, limit, tail, from)
  if begin and #pending[2] > 0 then
    pending[1] = beginAttempt(cursorKey, id, firstSeq, lastOut)
    pending[3] = 1
  end
  return pending
end
local function advanceCursor(key, id, seq)
  local done, attempt = readCursor(key, id)
  if seq > done then done = seq end
  if attempt and attemptEnd(attempt) <= seq then attempt = nil end
  return writeCursor(key, id, done, attempt)
end
`;

/**
 * ARGV[1]: JSON { p, id, expected, messages: count, work: [to...], indexes, inbound?: { key, ttl },
 * cursor?: { dest, token, seq }, claim?: { dests, ms, items, token }, noticeTo, announce? }; ARGV[2]: header
 * JSON; ARGV[3]: notice JSON; then each message JSON, then each work item's body JSON. The JSON
 * strings travel as arguments of their own: nested in ARGV[1], decoding them cost Redis more than
 * the script's commands.
 * Returns { 'ok', version, (destination, token, { cursor, { item... } })... } | { 'conflict', actual or '' }
 * | { 'duplicate', conversation id } | { 'lease_lost' }.
 */
const COMMIT = `
local a = cjson.decode(ARGV[1])
local p = a.p
local convKey = p .. 'conv:' .. a.id
local current = redis.call('HGET', convKey, 'version')
if a.expected == 0 then
  if current then return { 'conflict', current } end
elseif not current then
  return { 'conflict', '' }
elseif tonumber(current) ~= a.expected then
  return { 'conflict', current }
end
local leaseLost = a.cursor and redis.call('HGET', p .. 'lease:' .. a.cursor.dest, a.id) ~= a.cursor.token
if a.inbound then
  local inboundKey = p .. 'inbound:' .. a.inbound.key
  if leaseLost then
    local seen = redis.call('GET', inboundKey)
    if seen then return { 'duplicate', seen } end
  elseif not redis.call('SET', inboundKey, a.inbound.value, 'PX', int(a.inbound.ttl), 'NX') then
    -- The last check writes the mark when it passes (one command instead of GET, then SET).
    return { 'duplicate', redis.call('GET', inboundKey) }
  end
end
if leaseLost then return { 'lease_lost' } end
-- Every check passed: from here on nothing can fail.
local version = a.expected + 1
redis.call('HSET', convKey, 'header', ARGV[2], 'version', int(version))
local msgsKey = p .. 'msgs:' .. a.id
pushAll(msgsKey, ARGV, 4, 3 + a.messages)
local logKey = p .. 'log:' .. a.id
-- What this commit appended to the log, and the due scores it knows (false: not due), so a claim
-- below reads neither back.
local tail
local scores = {}
local skipTo = {}
if #a.work > 0 then
  local now = clock()
  local seq = redis.call('LLEN', logKey)
  tail = { from = seq, items = {} }
  local bodies, dests, firstOf, lastOf = {}, {}, {}, {}
  for k, to in ipairs(a.work) do
    seq = seq + 1
    local json = '{"seq":' .. int(seq) .. ',"at":' .. int(now) .. ',"version":' .. int(version) .. ',' .. string.sub(ARGV[3 + a.messages + k], 2)
    bodies[#bodies + 1] = json
    tail.items[#tail.items + 1] = { json = json, to = to, seq = seq }
    for _, d in ipairs(to) do
      if not lastOf[d] then
        dests[#dests + 1] = d
        firstOf[d] = seq
      end
      lastOf[d] = seq
    end
  end
  pushAll(logKey, bodies, 1, #bodies)
  local claiming = {}
  if a.claim then
    for _, d in ipairs(a.claim.dests) do claiming[d] = true end
  end
  -- One due entry and one last seq per destination, however many items name it.
  for _, d in ipairs(dests) do
    if redis.call('ZADD', p .. 'due:' .. d, 'NX', int(now), a.id) == 1 then scores[d] = now end
    local lastKey = p .. 'last:' .. d
    -- A destination to claim that had nothing pending: its work starts at its first new item, and
    -- the items between its cursor and there (for others) need not be read back.
    if claiming[d] and tail.from > 0 and lastSeq(lastKey, a.id) <= readCursor(p .. 'cursor:' .. d, a.id) then skipTo[d] = firstOf[d] - 1 end
    redis.call('HSET', lastKey, a.id, int(lastOf[d]))
    remember(lastKey, a.id, int(lastOf[d]))
  end
end
for _, x in ipairs(a.indexes) do
  if x.op == 'set' then
    if x.ttl then
      redis.call('SET', p .. 'idx:' .. x.key, x.value, 'PX', int(x.ttl))
    else
      redis.call('SET', p .. 'idx:' .. x.key, x.value)
    end
  elseif x.op == 'delete' then
    redis.call('DEL', p .. 'idx:' .. x.key)
  elseif x.op == 'add' then
    redis.call('SADD', p .. 'members:' .. x.key, x.member)
  elseif x.op == 'remove' then
    redis.call('SREM', p .. 'members:' .. x.key, x.member)
  end
end
if a.schedule then
  if a.schedule.at == cjson.null then
    redis.call('ZREM', p .. 'due:' .. a.schedule.dest, a.id)
    scores[a.schedule.dest] = false
  else
    redis.call('ZADD', p .. 'due:' .. a.schedule.dest, int(a.schedule.at), a.id)
    scores[a.schedule.dest] = a.schedule.at
  end
end
-- The cursor's worker is done if nothing is left for it: its lease goes back in this script.
local released = false
if a.cursor then
  local cursorKey = p .. 'cursor:' .. a.cursor.dest
  advanceCursor(cursorKey, a.id, a.cursor.seq)
  if a.cursor.release and lastSeq(p .. 'last:' .. a.cursor.dest, a.id) <= readCursor(cursorKey, a.id) then
    redis.call('HDEL', p .. 'lease:' .. a.cursor.dest, a.id)
    redis.call('ZREM', p .. 'due:' .. a.cursor.dest, a.id)
    released = true
  end
end
local out = { released and 'released' or 'ok', int(version) }
local claimed = {}
if a.claim then
  local now = clock()
  for i, d in ipairs(a.claim.dests) do
    local leaseKey, dueKey = p .. 'lease:' .. d, p .. 'due:' .. d
    -- Due now: not leased by a live worker (its score is the lease's expiry) nor waiting out a backoff.
    local score = scores[d]
    if score == nil then score = redis.call('ZSCORE', dueKey, a.id) end
    local done = readCursor(p .. 'cursor:' .. d, a.id)
    local last = lastSeq(p .. 'last:' .. d, a.id)
    if score and tonumber(score) <= now and last > done then
      local token = a.claim.token .. '.' .. i
      redis.call('HSET', leaseKey, a.id, token)
      redis.call('ZADD', dueKey, int(now + a.claim.ms), a.id)
      claimed[d] = true
      out[#out + 1] = d
      out[#out + 1] = token
      out[#out + 1] = pendingBegun(p .. 'cursor:' .. d, p .. 'last:' .. d, logKey, a.id, d, a.claim.items, a.claim.begin[d] ~= nil, tail, skipTo[d])
    end
  end
end
-- Other instances need not look for what this one leased, nor for an announced destination's (none).
local leased = {}
for _, d in ipairs(a.noticeTo) do
  if claimed[d] then leased[#leased + 1] = cjson.encode(d) end
end
for _, d in ipairs(a.announce or {}) do leased[#leased + 1] = cjson.encode(d) end
if #leased > 0 then
  redis.call('PUBLISH', p .. 'changes', ARGV[3]:sub(1, -2) .. ',"leased":[' .. table.concat(leased, ',') .. ']}')
else
  redis.call('PUBLISH', p .. 'changes', ARGV[3])
end
return out
`;

/** KEYS: conv, msgs. Returns false or { header, version, { message json... } }. */
const READ = `
local h = redis.call('HMGET', KEYS[1], 'header', 'version')
if not h[1] then return false end
return { h[1], h[2], redis.call('LRANGE', KEYS[2], 0, -1) }
`;

/** KEYS: conv, msgs. ARGV: known version, known message count. Returns false, 'unchanged', or { header, version, { message json after the known ones... } }. */
const READ_SINCE = `
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return false end
if version == ARGV[1] then return 'unchanged' end
return { redis.call('HGET', KEYS[1], 'header'), version, redis.call('LRANGE', KEYS[2], tonumber(ARGV[2]), -1) }
`;

/**
 * KEYS: due, lease, cursor, last. ARGV: leaseMs, limit, token base, key prefix, destination, items.
 * Returns { id, token, { cursor json, { item json... } }, id, token, ... }.
 */
const LEASE = `
local now = clock()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do
  local token = ARGV[3] .. '.' .. i
  redis.call('ZADD', KEYS[1], 'XX', int(now + tonumber(ARGV[1])), id)
  redis.call('HSET', KEYS[2], id, token)
  out[#out + 1] = id
  out[#out + 1] = token
  out[#out + 1] = pendingBegun(KEYS[3], KEYS[4], ARGV[4] .. 'log:' .. id, id, ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1')
end
return out
`;

/** KEYS: due, lease. ARGV: id, token, leaseMs. Returns 1 if renewed, 0 if the lease was lost. */
const RENEW = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], int(clock() + tonumber(ARGV[3])), ARGV[1])
return 1
`;

/** KEYS: cursor, last, log. ARGV: id, destination, limit. Returns { cursor json or '', { item json... } }. */
const PENDING = `
local pending = pendingFor(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]))
return pending
`;

/**
 * KEYS: lease, cursor. ARGV: id, token, seq, done ('' = unchanged: else the cursor moves there
 * first), upTo ('' = seq alone). Returns the cursor JSON, or false if the lease was lost.
 */
const BEGIN = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return false end
if ARGV[4] ~= '' then advanceCursor(KEYS[2], ARGV[1], tonumber(ARGV[4])) end
return beginAttempt(KEYS[2], ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5]))
`;

/** KEYS: lease, cursor. ARGV: id, token, seq. Returns 1, or 0 if the lease was lost. */
const ADVANCE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
advanceCursor(KEYS[2], ARGV[1], tonumber(ARGV[3]))
return 1
`;

/**
 * KEYS: lease, cursor, last, due. ARGV: id, token, retryAt ('' = now).
 * Returns 0 (lease lost: nothing done), 1 (nothing left: no longer due) or 2 (still due).
 */
const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local done = readCursor(KEYS[2], ARGV[1])
local last = lastSeq(KEYS[3], ARGV[1])
if last > done then
  local at = clock()
  if ARGV[3] ~= '' then at = tonumber(ARGV[3]) end
  redis.call('ZADD', KEYS[4], int(at), ARGV[1])
  return 2
end
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`;

/**
 * Every finish (and next) asked for during one turn of the event loop, in one script. ARGV: per
 * finish, 13 values: lease, cursor, last, due and log keys, id, token, done ('' = unchanged),
 * retryAt ('' = none), items ('' = a finish; else a next: the batch size), begin ('1' = record
 * attempts on the batch's items), the destination, and the attempt record after a failure (JSON,
 * '' = none). Returns per finish 0 (lease lost: nothing done), 1 (lease
 * given back), or with work left and the lease kept, 2 for a finish and the next batch for a next.
 */
const FINISH = `
local out = {}
for i = 1, #ARGV, 13 do
  local leaseKey, cursorKey, lastKey, dueKey, logKey, id, token, done, retryAt, items, begin, dest, failed = unpack(ARGV, i, i + 12)
  local result
  if redis.call('HGET', leaseKey, id) ~= token then
    result = 0
  else
    if done ~= '' then advanceCursor(cursorKey, id, tonumber(done)) end
    local upTo = readCursor(cursorKey, id)
    if failed ~= '' then writeCursor(cursorKey, id, upTo, cjson.decode(failed)) end
    local last = lastSeq(lastKey, id)
    if last > upTo and retryAt == '' then
      if items == '' then
        result = 2
      else
        result = pendingBegun(cursorKey, lastKey, logKey, id, dest, tonumber(items), begin == '1')
      end
    else
      redis.call('HDEL', leaseKey, id)
      if last > upTo then
        redis.call('ZADD', dueKey, int(tonumber(retryAt)), id)
      else
        redis.call('ZREM', dueKey, id)
      end
      result = 1
    end
  end
  out[#out + 1] = result
end
return out
`;

/**
 * KEYS: cursor, last, due, lease. ARGV: conversation ids. Makes each one with work after its
 * cursor due now, unless a worker holds an unexpired lease on it (its release makes it due).
 */
const WAKE = `
for _, id in ipairs(ARGV) do
  local done = readCursor(KEYS[1], id)
  local last = lastSeq(KEYS[2], id)
  if last > done then
    local now = clock()
    local score = redis.call('ZSCORE', KEYS[3], id)
    local leased = redis.call('HEXISTS', KEYS[4], id) == 1 and score and tonumber(score) > now
    if not leased then redis.call('ZADD', KEYS[3], int(now), id) end
  end
end
return 1
`;

/** A script sent by its SHA1, and in full when Redis does not have it (first use, or after a restart). */
class Script {
  readonly source: string;
  readonly sha: string;
  constructor(body: string) {
    this.source = PRELUDE + body;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  async run(client: RedisClient, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await client.sendCommand(['EVALSHA', this.sha, ...tail]);
    } catch (err) {
      if (!/^NOSCRIPT/.test((err as Error)?.message ?? '')) throw err;
      return client.sendCommand(['EVAL', this.source, ...tail]);
    }
  }
}

const SCRIPTS = {
  commit: new Script(COMMIT),
  read: new Script(READ),
  readSince: new Script(READ_SINCE),
  lease: new Script(LEASE),
  renew: new Script(RENEW),
  pending: new Script(PENDING),
  begin: new Script(BEGIN),
  advance: new Script(ADVANCE),
  release: new Script(RELEASE),
  finish: new Script(FINISH),
  wake: new Script(WAKE),
};

export interface RedisStoreOptions {
  /** Prefix of every key and of the change channel (default `bridge`). */
  namespace?: string;
  lockTtlMs?: number;
  lockWaitMs?: number;
}

/**
 * A prefix no other lease token has: random per process, counted per call (a random draw per
 * commit cost 2% of the main thread). Scripts append `.<n>` for each lease they take.
 */
const TOKEN_BASE = randomBytes(9).toString('base64url');
let tokenCount = 0;
function leaseTokenBase(): string {
  return `${TOKEN_BASE}-${(tokenCount += 1).toString(36)}`;
}

export class RedisStore implements Store {
  readonly backend = 'redis';
  readonly work: WorkQueue;
  private readonly p: string;
  /**
   * Patient writes go right behind the next write: the client sends every command asked for in one
   * turn in one socket write, so Redis runs both in one turn of its event loop, under one AOF fsync
   * (appendfsync always). Sent on their own, a customer's commit that came just after one waited
   * for its fsync first.
   */
  private readonly patience = new PatientWrites();
  private readonly listeners = new Set<(notice: ChangeNotice) => void>();
  /** Tells this store's own notices apart on the shared channel. */
  private readonly instance = randomBytes(8).toString('hex');
  private readonly ownMark = `"from":"${this.instance}"`;

  constructor(
    private readonly client: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly data: AdapterData,
    namespace: string,
  ) {
    this.p = `${namespace}:`;
    this.work = new RedisWorkQueue(client, this.p, this.patience);
  }

  /** The pub/sub channel carrying ChangeNotice JSON. */
  get channel(): string {
    return `${this.p}changes`;
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    const reply = (await guard(`read conversation ${id}`, () => SCRIPTS.read.run(this.client, [`${this.p}conv:${id}`, `${this.p}msgs:${id}`], []))) as
      | [string, string, string[]]
      | null;
    if (!reply) return undefined;
    const [header, version, messages] = reply;
    return { ...(JSON.parse(header) as Omit<Conversation, 'messages' | 'version'>), version: Number(version), messages: messages.map((m) => JSON.parse(m) as Message) };
  }

  async getConversationSince(id: string, version: number, messageCount: number): Promise<Conversation | 'unchanged' | undefined> {
    const reply = (await guard(`read conversation ${id}`, () =>
      SCRIPTS.readSince.run(this.client, [`${this.p}conv:${id}`, `${this.p}msgs:${id}`], [String(version), String(messageCount)]),
    )) as [string, string, string[]] | 'unchanged' | null;
    if (!reply) return undefined;
    if (reply === 'unchanged') return 'unchanged';
    const [header, stored, messages] = reply;
    return { ...(JSON.parse(header) as Omit<Conversation, 'messages' | 'version'>), version: Number(stored), messages: messages.map((m) => JSON.parse(m) as Message) };
  }

  async commit(commit: Commit): Promise<number> {
    return (await this.commitClaiming(commit)).version;
  }

  async commitClaiming(commit: Commit): Promise<CommitResult> {
    const { conversation, expectedVersion } = commit;
    const id = conversation.id;
    if (!Number.isInteger(expectedVersion) || expectedVersion < 0) throw new TypeError(`expectedVersion must be a whole number >= 0, got ${expectedVersion}`);
    if (commit.cursor && commit.cursor.lease.conversationId !== id) {
      throw new TypeError(`The cursor's lease is for ${commit.cursor.lease.conversationId}, not ${id}`);
    }
    const work = commit.work ?? [];
    const destinations = [...new Set([...work.flatMap((w) => w.to), ...(commit.schedule ? [commit.schedule.destination] : [])])];
    const announced = commit.announce?.filter((d) => !destinations.includes(d)) ?? [];
    destinations.push(...announced);
    const notice: ChangeNotice & { from: string } = { conversationId: id, version: expectedVersion + 1, ownershipVersion: conversation.ownershipVersion, destinations, from: this.instance };
    const messages = commit.appended.map((m) => JSON.stringify(m));
    const bodies = work.map((w) => JSON.stringify({ to: w.to, payload: w.payload }));
    const arg = {
      p: this.p,
      id,
      expected: expectedVersion,
      messages: messages.length,
      work: work.map((w) => w.to),
      indexes: (commit.indexes ?? []).map((x) => (x.op === 'set' && x.ttlMs !== undefined ? { op: x.op, key: x.key, value: x.value, ttl: ttl(x.ttlMs) } : x.op === 'set' ? { op: x.op, key: x.key, value: x.value } : x)),
      ...(commit.inbound ? { inbound: { key: commit.inbound.key, ttl: ttl(commit.inbound.ttlMs), value: commit.inbound.message ? `${id} ${commit.inbound.message}` : id } } : {}),
      ...(commit.cursor ? { cursor: { dest: commit.cursor.lease.destination, token: commit.cursor.lease.token, seq: commit.cursor.seq, ...(commit.cursor.release ? { release: true } : {}) } } : {}),
      ...(commit.schedule ? { schedule: { dest: commit.schedule.destination, at: commit.schedule.at === null ? null : Math.round(commit.schedule.at) } } : {}),
      noticeTo: destinations,
      ...(announced.length ? { announce: announced } : {}),
      ...(commit.claim?.destinations.length
        ? {
            claim: {
              dests: commit.claim.destinations,
              ms: ttl(commit.claim.leaseMs),
              items: Math.max(1, Math.floor(commit.claim.items ?? 50)),
              token: leaseTokenBase(),
              // A set (object) in Lua: `begin[d]`. `{}` when none, never an empty array.
              begin: Object.fromEntries((commit.claim.begin ?? []).map((d) => [d, true])),
            },
          }
        : {}),
    };
    // The script adds `leased` (what it leased for this instance) to the notice.
    const args = [JSON.stringify(arg), commitHeader(commit), JSON.stringify(notice), ...messages, ...bodies];
    const sent = guard(`commit conversation ${id}`, () => SCRIPTS.commit.run(this.client, [], args));
    this.patience.impatient();
    const reply = (await sent) as unknown[];
    const [outcome, detail] = Array.isArray(reply) ? reply : [];
    switch (outcome) {
      case 'ok':
      case 'released': {
        const claimed: Lease[] = [];
        for (let i = 2; i + 2 < reply.length; i += 3) claimed.push({ destination: String(reply[i]), conversationId: id, token: String(reply[i + 1]), pending: parsePending(reply[i + 2] as PendingReply) });
        // This instance hears its own commits at once; the others through the channel.
        if (claimed.length || announced.length) notice.leased = [...claimed.map((l) => l.destination), ...announced];
        this.notify(notice);
        return outcome === 'released' ? { version: Number(detail), claimed, released: true } : { version: Number(detail), claimed };
      }
      case 'conflict':
        throw new VersionConflictError(id, expectedVersion, detail === '' || detail == null ? undefined : Number(detail));
      case 'duplicate':
        throw new DuplicateInboundError(commit.inbound!.key, inboundMark(String(detail)).conversationId);
      case 'lease_lost':
        throw new LeaseLostError(commit.cursor!.lease.destination, id);
      default:
        throw new StoreUnavailableError(`Store (redis) unavailable: could not commit conversation ${id}: unexpected reply ${JSON.stringify(reply)}`);
    }
  }

  async indexValue(key: string): Promise<string | undefined> {
    const value = await guard(`read index ${key}`, () => this.client.sendCommand(['GET', `${this.p}idx:${key}`]));
    return value == null ? undefined : String(value);
  }

  async indexMembers(key: string): Promise<string[]> {
    const members = await guard(`read index ${key}`, () => this.client.sendCommand<string[]>(['SMEMBERS', `${this.p}members:${key}`]));
    return members.map(String);
  }

  async inboundSeen(key: string): Promise<string | undefined> {
    return (await this.inboundMark(key))?.conversationId;
  }

  async inboundMessage(key: string): Promise<string | undefined> {
    return (await this.inboundMark(key))?.messageId;
  }

  private async inboundMark(key: string): Promise<{ conversationId: string; messageId?: string } | undefined> {
    const value = await guard(`read inbound key ${key}`, () => this.client.sendCommand(['GET', `${this.p}inbound:${key}`]));
    return value == null ? undefined : inboundMark(String(value));
  }


  onChange(listener: (notice: ChangeNotice) => void): () => void {
    // Wrap so the same function added twice is two subscriptions, each removed by its own unsubscribe.
    const entry = (notice: ChangeNotice) => listener(notice);
    this.listeners.add(entry);
    return () => void this.listeners.delete(entry);
  }

  /** Called by the subscriber for every message on the change channel. */
  deliver(message: string): void {
    // This instance's own commits were told when they returned: not parsed again. JSON escapes
    // every quote inside a string, so the unescaped `"from":"<id>"` can only be the notice's own field.
    if (message.includes(this.ownMark)) return;
    let notice: ChangeNotice & { from?: string };
    try {
      notice = JSON.parse(message) as ChangeNotice & { from?: string };
    } catch {
      return;
    }
    this.notify(notice);
  }

  private notify(notice: ChangeNotice & { from?: string }): void {
    const { from: _from, ...told } = notice;
    for (const listener of [...this.listeners]) {
      try {
        listener(told);
      } catch {
        // One listener's failure must not keep the notice from the others.
      }
    }
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.data.withLock(key, fn);
  }

  once(key: string, ttlMs?: number): Promise<boolean> {
    return this.data.once(key, ttlMs);
  }

  forget(key: string): Promise<void> {
    return this.data.forget(key);
  }

  increment(counter: string): Promise<number> {
    return this.data.increment(counter);
  }

  kv(namespace: string): KeyValue {
    return this.data.kv(namespace);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.patience.release();
    await this.data.close();
    await Promise.all([quit(this.subscriber), quit(this.client)]);
  }
}

class RedisWorkQueue implements WorkQueue {
  constructor(
    private readonly client: RedisClient,
    private readonly p: string,
    private readonly patience: PatientWrites,
  ) {}

  /** Sends a write now, or holds it while it is patient (PatientWrites). */
  private write<T>(options: Patience | undefined, send: () => Promise<T>): Promise<T> {
    if (!options?.patient) {
      const sent = send();
      this.patience.impatient();
      return sent;
    }
    return new Promise<T>((resolve, reject) => {
      const go = () => void send().then(resolve, reject);
      if (!this.patience.wait(go)) go();
    });
  }

  private keys(destination: string) {
    const p = this.p;
    return {
      due: `${p}due:${destination}`,
      lease: `${p}lease:${destination}`,
      cursor: `${p}cursor:${destination}`,
      last: `${p}last:${destination}`,
    };
  }

  async lease(destination: string, options: { limit: number; leaseMs: number; items?: number; begin?: boolean } & Patience): Promise<Lease[]> {
    const k = this.keys(destination);
    const base = leaseTokenBase();
    const reply = (await guard(`lease ${destination} work`, () =>
      this.write(options, () => SCRIPTS.lease.run(this.client, [k.due, k.lease, k.cursor, k.last], [
        String(ttl(options.leaseMs)),
        String(Math.max(0, Math.floor(options.limit))),
        base,
        this.p,
        destination,
        String(Math.max(1, Math.floor(options.items ?? 50))),
        options.begin ? '1' : '0',
      ])),
    )) as Array<string | PendingReply>;
    const leases: Lease[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) leases.push({ destination, conversationId: String(reply[i]), token: String(reply[i + 1]), pending: parsePending(reply[i + 2] as PendingReply) });
    return leases;
  }

  async renew(lease: Lease, leaseMs: number): Promise<boolean> {
    const k = this.keys(lease.destination);
    const reply = await guard(`renew the ${lease.destination} lease on ${lease.conversationId}`, () =>
      SCRIPTS.renew.run(this.client, [k.due, k.lease], [lease.conversationId, lease.token, String(ttl(leaseMs))]),
    );
    return Number(reply) === 1;
  }

  async pending(destination: string, conversationId: string, limit = 100): Promise<{ cursor: Cursor; items: WorkItem[] }> {
    const k = this.keys(destination);
    const reply = (await guard(`read ${destination} work of ${conversationId}`, () =>
      SCRIPTS.pending.run(this.client, [k.cursor, k.last, `${this.p}log:${conversationId}`], [conversationId, destination, String(Math.max(0, Math.floor(limit)))]),
    )) as [string, string[]];
    const [cursor, items] = reply;
    return { cursor: parseCursor(cursor), items: items.map(parseItem) };
  }

  async begin(lease: Lease, seq: number, done?: number, upTo?: number, options?: Patience): Promise<Cursor> {
    const k = this.keys(lease.destination);
    const reply = await guard(`record an attempt on ${lease.destination} work of ${lease.conversationId}`, () =>
      this.write(options, () => SCRIPTS.begin.run(this.client, [k.lease, k.cursor], [lease.conversationId, lease.token, String(seq), done === undefined ? '' : String(done), upTo === undefined ? '' : String(upTo)])),
    );
    if (reply == null) throw new LeaseLostError(lease.destination, lease.conversationId);
    return parseCursor(String(reply));
  }

  async advance(lease: Lease, seq: number): Promise<void> {
    const k = this.keys(lease.destination);
    const reply = await guard(`advance the ${lease.destination} cursor of ${lease.conversationId}`, () =>
      SCRIPTS.advance.run(this.client, [k.lease, k.cursor], [lease.conversationId, lease.token, String(seq)]),
    );
    if (Number(reply) !== 1) throw new LeaseLostError(lease.destination, lease.conversationId);
  }

  async release(lease: Lease, retryAt?: number): Promise<void> {
    const k = this.keys(lease.destination);
    await guard(`release the ${lease.destination} lease on ${lease.conversationId}`, () =>
      SCRIPTS.release.run(this.client, [k.lease, k.cursor, k.last, k.due], [lease.conversationId, lease.token, retryAt === undefined ? '' : String(Math.round(retryAt))]),
    );
  }

  async finish(lease: Lease, done?: number, retryAt?: number, failed?: NonNullable<Cursor['attempt']>): Promise<boolean> {
    const reply = await this.queueFinish(`finish ${lease.destination} work of ${lease.conversationId}`, lease, done, retryAt === undefined ? '' : String(Math.round(retryAt)), '', false, failed);
    if (reply === 0) throw new LeaseLostError(lease.destination, lease.conversationId);
    return reply === 1;
  }

  async next(lease: Lease, done: number | undefined, options: { items: number; begin: boolean } & Patience): Promise<NonNullable<Lease['pending']> | undefined> {
    const items = String(Math.max(1, Math.floor(options.items)));
    const reply = await this.queueFinish(`go on with ${lease.destination} work of ${lease.conversationId}`, lease, done, '', items, options.begin, undefined, options.patient);
    if (reply === 0) throw new LeaseLostError(lease.destination, lease.conversationId);
    return Array.isArray(reply) ? parsePending(reply) : undefined;
  }

  private queueFinish(what: string, lease: Lease, done: number | undefined, retryAt: string, items: string, begin: boolean, failed?: NonNullable<Cursor['attempt']>, patient = false): Promise<number | PendingReply> {
    const k = this.keys(lease.destination);
    const args = [k.lease, k.cursor, k.last, k.due, `${this.p}log:${lease.conversationId}`, lease.conversationId, lease.token, done === undefined ? '' : String(done), retryAt, items, begin ? '1' : '', lease.destination, failed ? JSON.stringify(failed) : ''];
    const queue = patient ? this.patientFinishes : this.finishes;
    return guard(
      what,
      () =>
        new Promise<number | PendingReply>((resolve, reject) => {
          queue.entries.push({ args, resolve, reject });
          if (queue.entries.length > 1) return;
          const send = () => this.sendFinishes(queue);
          if (!patient || !this.patience.wait(send)) setImmediate(send);
        }),
    );
  }

  /** The finishes (and nexts) of one turn, waiting to go as one script call (every worker ends each batch with one); patient ones apart. */
  private readonly finishes: FinishQueue = { entries: [] };
  private readonly patientFinishes: FinishQueue = { entries: [] };

  private sendFinishes(queue: FinishQueue): void {
    const batch = queue.entries;
    queue.entries = [];
    const sent = SCRIPTS.finish.run(this.client, [], batch.flatMap((f) => f.args));
    if (queue === this.finishes) this.patience.impatient();
    sent.then(
      (reply) => {
        const results = reply as Array<number | PendingReply>;
        batch.forEach((f, i) => {
          const result = results[i]!;
          f.resolve(Array.isArray(result) ? result : Number(result));
        });
      },
      (err: unknown) => {
        for (const f of batch) f.reject(err);
      },
    );
  }

  async backlog(destination: string): Promise<{ due: number; oldest?: number }> {
    const due = this.keys(destination).due;
    const now = String(Date.now());
    const [count, first] = await guard(`read the ${destination} backlog`, () =>
      Promise.all([this.client.sendCommand<number>(['ZCOUNT', due, '-inf', now]), this.client.sendCommand<string[]>(['ZRANGEBYSCORE', due, '-inf', now, 'WITHSCORES', 'LIMIT', '0', '1'])]),
    );
    return { due: Number(count), ...(first.length >= 2 ? { oldest: Number(first[1]) } : {}) };
  }

  async nextDue(destination: string): Promise<number | undefined> {
    const reply = (await guard(`read when ${destination} work is due`, () =>
      this.client.sendCommand<string[]>(['ZRANGE', this.keys(destination).due, '0', '0', 'WITHSCORES']),
    ));
    return reply.length >= 2 ? Number(reply[1]) : undefined;
  }

  async wake(destination: string, conversationIds: string[]): Promise<void> {
    if (conversationIds.length === 0) return;
    const k = this.keys(destination);
    await guard(`wake ${destination} work`, () => SCRIPTS.wake.run(this.client, [k.cursor, k.last, k.due, k.lease], conversationIds));
  }
}

/**
 * Opens the Redis store: one client for commands and a duplicate subscribed to the change channel
 * (node-redis resubscribes it after a reconnect). Fails with `StoreUnavailableError` if Redis is
 * unreachable.
 */
export async function openRedisStore(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
  const namespace = options.namespace ?? 'bridge';
  const client = await connectRedis(url);
  const subscriber = client.duplicate();
  subscriber.on('error', () => {}); // reconnects on its own
  let store: RedisStore | undefined;
  try {
    await subscriber.connect();
    const data = redisAdapterData(client, { namespace, lockTtlMs: options.lockTtlMs, lockWaitMs: options.lockWaitMs });
    store = new RedisStore(client, subscriber, data, namespace);
    const target = store;
    await subscriber.subscribe(target.channel, (message) => target.deliver(message));
    // Load the scripts now, so commits send only their SHA1 (best effort: EVAL is the fallback).
    await Promise.all(Object.values(SCRIPTS).map((s) => client.sendCommand(['SCRIPT', 'LOAD', s.source]).catch(() => undefined)));
    return store;
  } catch (err) {
    await Promise.all([quit(subscriber), quit(client)]);
    if (err instanceof StoreUnavailableError) throw err;
    throw new StoreUnavailableError(`Store (redis) unavailable: could not set up the store: ${(err as Error).message}`, err);
  }
}

/** Turns Redis failures into one typed error. A failed commit may or may not have landed: a retry from a fresh read is safe. */
async function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StoreUnavailableError(`Store (redis) unavailable: could not ${what}: ${(err as Error)?.message ?? String(err)}`, err);
  }
}

interface FinishQueue {
  entries: Array<{ args: string[]; resolve(reply: number | PendingReply): void; reject(err: unknown): void }>;
}

/** A lease's first batch as the scripts return it: cursor JSON, item JSONs, and 1 when an attempt was recorded on the first. */
type PendingReply = [string, string[], number?];

function parsePending([cursor, items, begun]: PendingReply): NonNullable<Lease['pending']> {
  return { cursor: parseCursor(cursor), items: items.map(parseItem), ...(begun === 1 ? { begun: true } : {}) };
}

function parseItem(raw: string): WorkItem {
  const item = JSON.parse(raw) as WorkItem;
  item.version ??= 0; // written before items carried it
  return item;
}

function parseCursor(raw: string): Cursor {
  if (!raw) return { done: 0 };
  const c = JSON.parse(raw) as Cursor;
  return c.attempt ? { done: c.done, attempt: c.attempt } : { done: c.done };
}

/** A TTL Redis accepts (PX needs a whole number >= 1). */
function ttl(ms: number): number {
  if (!Number.isFinite(ms)) throw new TypeError(`A duration must be a finite number of milliseconds, got ${ms}`);
  return Math.max(1, Math.round(ms));
}

async function quit(client: RedisClient): Promise<void> {
  if (!client.isOpen) return;
  if (!client.isReady) return client.destroy();
  await client.close().catch(() => client.destroy());
}

/** An inbound key's value: the conversation id, then the message id when the commit named it. */
function inboundMark(value: string): { conversationId: string; messageId?: string } {
  const space = value.indexOf(' ');
  return space < 0 ? { conversationId: value } : { conversationId: value.slice(0, space), messageId: value.slice(space + 1) };
}
