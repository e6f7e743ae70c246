-- GET /api/posts/<id> for ids drawn at random from the seeded range (wrk ... -- <max_id>).
-- Every stack sees the same sequence of ids: the generator is seeded the same way each run.

local max_id

function init(args)
  max_id = tonumber(args[1]) or 100000
  math.randomseed(12345)
end

function request()
  return wrk.format("GET", "/api/posts/" .. math.random(1, max_id))
end
