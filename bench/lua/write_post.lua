-- POST /api/posts with a body unique to each request (wrk ... -- <run_tag> <token>), counting
-- the 201s and keeping what each one acknowledged, so the runner can find every acknowledged
-- write in the database afterwards.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  run_tag = args[1]
  headers = {
    ["Authorization"] = "Bearer " .. args[2],
    ["Content-Type"] = "application/json",
  }
  sent = 0
  answered = 0
  acknowledged = {}
end

function request()
  sent = sent + 1
  local body = string.format('{"body": "bench %s %d-%d"}', run_tag, thread_number, sent)
  return wrk.format("POST", "/api/posts", headers, body)
end

function response(status, response_headers, body)
  answered = answered + 1
  if status == 201 then
    local id = body:match('"id":%s*(%d+)')
    local key = body:match("bench %S+ (%d+%-%d+)")
    acknowledged[#acknowledged + 1] = (id or "?") .. "=" .. (key or "?")
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local n = thread:get("thread_number")
    local acks = thread:get("acknowledged")
    io.write(string.format("bench-thread %d sent %d answered %d created %d\n",
      n, thread:get("sent"), thread:get("answered"), #acks))
    io.write("bench-acks " .. n .. " " .. table.concat(acks, ",") .. "\n")
  end
end
