-- Today's spending as the daily limit counts it, per model: the rule of `Spending` (mod.rs),
-- written again here because the claim must run it in the same atomic step. Put before the
-- scripts that use it (the claim, and `spending_today`'s own script).
-- Keys read: reve:usage:{day} (`credits`, `usd`, `uncertain`); per model on that day,
-- reve:usage:{day}:uncertain, reve:usage:{day}:usd_missing and reve:usage:{day}:units_missing;
-- reve:usage:costs and reve:usage:usd_costs (each model's latest cost, in its unit and in US
-- dollars), reve:usage:last, reve:in_flight and each job's `model`.

-- Every job recorded before jobs named their model was an edit.
local OLDER_MODEL = 'reve/edit-image'

-- The usage reported on `day` (in its unit, and in US dollars), and per model (in `order`):
-- its edits in flight, its uncertain ones of `day` and its latest reported cost and cost in
-- US dollars (false when it never reported one).
local function spending(day)
  local used = tonumber(redis.call('HGET', 'reve:usage:' .. day, 'credits') or '0')
  local used_usd = tonumber(redis.call('HGET', 'reve:usage:' .. day, 'usd') or '0')
  local models, order = {}, {}
  local function part(model)
    if not models[model] then
      models[model] = {in_flight = 0, uncertain = 0, usd_missing = 0, units_missing = 0,
        cost = false, usd_cost = false}
      table.insert(order, model)
    end
    return models[model]
  end
  local costs = redis.call('HGETALL', 'reve:usage:costs')
  for i = 1, #costs, 2 do part(costs[i]).cost = tonumber(costs[i + 1]) end
  local usd_costs = redis.call('HGETALL', 'reve:usage:usd_costs')
  for i = 1, #usd_costs, 2 do part(usd_costs[i]).usd_cost = tonumber(usd_costs[i + 1]) end
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
  for _, missing in ipairs({'usd_missing', 'units_missing'}) do
    local counts = redis.call('HGETALL', 'reve:usage:' .. day .. ':' .. missing)
    for i = 1, #counts, 2 do part(counts[i])[missing] = tonumber(counts[i + 1]) end
  end
  for _, id in ipairs(redis.call('SMEMBERS', 'reve:in_flight')) do
    local flying = part(redis.call('HGET', 'reve:job:' .. id, 'model') or OLDER_MODEL)
    flying.in_flight = flying.in_flight + 1
  end
  return used, models, order, used_usd
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
    local unknown = known.uncertain + known.units_missing
    if unknown > 0 then
      local cost = cost_of(models, model)
      if not cost then return 'over' end
      counted = counted + unknown * cost
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

-- The US dollars assumed of an edit of `model` whose cost is not reported, as
-- `Spending::usd_cost_of` says: its live price (in `prices`), else its latest reported cost,
-- else the highest any model is priced or reported at, else false.
local function usd_cost_of(models, prices, model)
  if prices[model] then return prices[model] end
  if models[model] and models[model].usd_cost then return models[model].usd_cost end
  local highest = false
  for _, known in pairs(models) do
    if known.usd_cost and (not highest or known.usd_cost > highest) then highest = known.usd_cost end
  end
  for _, price in pairs(prices) do
    if not highest or price > highest then highest = price end
  end
  return highest
end

-- 'over', 'hold' or 'fits' for an edit of `model` against a limit in US dollars, as
-- `Spending::verdict_usd` decides.
local function verdict_usd(limit, prices, model, used_usd, models)
  local counted = used_usd
  for name, known in pairs(models) do
    local unknown = known.uncertain + known.usd_missing
    if unknown > 0 then
      local cost = usd_cost_of(models, prices, name)
      if not cost then return 'over' end
      counted = counted + unknown * cost
    end
  end
  local own = usd_cost_of(models, prices, model) or 0
  if counted >= limit or counted + own > limit then return 'over' end
  local coming = counted + own
  for name, known in pairs(models) do
    if known.in_flight > 0 then
      local cost = usd_cost_of(models, prices, name)
      if not cost then return 'hold' end
      coming = coming + known.in_flight * cost
    end
  end
  if coming > limit then return 'hold' end
  return 'fits'
end

-- A reply of `head`, the usage and the usage in US dollars, then per model: its name, in
-- flight, uncertain, cost, cost in US dollars ('' for none), answers lacking US dollars and
-- answers lacking credits or tokens, as `spending_from_reply` reads it.
local function spending_reply(head, used, models, order, used_usd)
  local reply = {head, tostring(used), tostring(used_usd)}
  for _, model in ipairs(order) do
    local known = models[model]
    table.insert(reply, model)
    table.insert(reply, tostring(known.in_flight))
    table.insert(reply, tostring(known.uncertain))
    table.insert(reply, known.cost and tostring(known.cost) or '')
    table.insert(reply, known.usd_cost and tostring(known.usd_cost) or '')
    table.insert(reply, tostring(known.usd_missing))
    table.insert(reply, tostring(known.units_missing))
  end
  return reply
end
