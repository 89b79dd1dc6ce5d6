-- Today's spending as the daily limit counts it, per model: the rule of `Spending` (mod.rs),
-- written again here because the claim must run it in the same atomic step. Put before the
-- scripts that use it (the claim, and `spending_today`'s own script).
-- Keys read: reve:usage:{day} (`credits`, `uncertain`), reve:usage:{day}:uncertain (per
-- model), reve:usage:costs (each model's latest cost), reve:usage:last, reve:in_flight and
-- each job's `model`.

-- Every job recorded before jobs named their model was an edit.
local OLDER_MODEL = 'reve/edit-image'

-- The usage reported on `day`, and per model (in `order`): its edits in flight, its uncertain
-- ones of `day` and its latest reported cost (false when it never reported one).
local function spending(day)
  local used = tonumber(redis.call('HGET', 'reve:usage:' .. day, 'credits') or '0')
  local models, order = {}, {}
  local function part(model)
    if not models[model] then
      models[model] = {in_flight = 0, uncertain = 0, cost = false}
      table.insert(order, model)
    end
    return models[model]
  end
  local costs = redis.call('HGETALL', 'reve:usage:costs')
  for i = 1, #costs, 2 do part(costs[i]).cost = tonumber(costs[i + 1]) end
  -- A store from before costs per model knows the latest edit's only.
  if #costs == 0 then
    local last = redis.call('GET', 'reve:usage:last')
    if last then part(OLDER_MODEL).cost = tonumber(last) end
  end
  local uncertain = redis.call('HGETALL', 'reve:usage:' .. day .. ':uncertain')
  local counted = 0
  for i = 1, #uncertain, 2 do
    local count = tonumber(uncertain[i + 1])
    if count > 0 then
      part(uncertain[i]).uncertain = count
      counted = counted + count
    end
  end
  -- Uncertain jobs counted before they were counted per model were edits.
  local total = tonumber(redis.call('HGET', 'reve:usage:' .. day, 'uncertain') or '0')
  if total > counted then
    local older = part(OLDER_MODEL)
    older.uncertain = older.uncertain + total - counted
  end
  for _, id in ipairs(redis.call('SMEMBERS', 'reve:in_flight')) do
    local flying = part(redis.call('HGET', 'reve:job:' .. id, 'model') or OLDER_MODEL)
    flying.in_flight = flying.in_flight + 1
  end
  return used, models, order
end

-- The cost assumed of an edit of `model` whose own is not reported: its model's latest, else
-- the highest any model reported, else false.
local function cost_of(models, model)
  if models[model] and models[model].cost then return models[model].cost end
  local highest = false
  for _, known in pairs(models) do
    if known.cost and (not highest or known.cost > highest) then highest = known.cost end
  end
  return highest
end

-- 'over', 'hold' or 'fits', as `Spending::verdict` decides.
local function verdict(limit, used, models)
  local counted = used
  for model, known in pairs(models) do
    if known.uncertain > 0 then
      local cost = cost_of(models, model)
      if not cost then return 'over' end
      counted = counted + known.uncertain * cost
    end
  end
  if counted >= limit then return 'over' end
  local coming = counted
  for model, known in pairs(models) do
    if known.in_flight > 0 then
      local cost = cost_of(models, model)
      if not cost then return 'hold' end
      coming = coming + known.in_flight * cost
    end
  end
  if coming >= limit then return 'hold' end
  return 'fits'
end

-- A reply of `head`, the usage, then per model: its name, in flight, uncertain and cost ('' for
-- none), as `spending_from_reply` reads it.
local function spending_reply(head, used, models, order)
  local reply = {head, tostring(used)}
  for _, model in ipairs(order) do
    local known = models[model]
    table.insert(reply, model)
    table.insert(reply, tostring(known.in_flight))
    table.insert(reply, tostring(known.uncertain))
    table.insert(reply, known.cost and tostring(known.cost) or '')
  end
  return reply
end
