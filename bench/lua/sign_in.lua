-- POST /api/tokens with HTTP Basic credentials, over and over (wrk ... -- <base64 user:password>).

function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. args[1]
end
