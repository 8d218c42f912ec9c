-- POST /subscribe/<form> as the hosted form posts it from a browser, a new address each time.
-- Arguments (after --): run tag, csrf_token, started, session cookie; all four from one real
-- GET of the form page, long enough before the run for the minimum fill time.
dofile("report.lua")

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  tag, csrf, started, cookie = args[1], args[2], args[3], args[4]
  n = 0
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-GB,en;q=0.9",
    ["Cookie"] = cookie,
    ["Origin"] = "https://news.shop.example",
    ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
      .. "(KHTML, like Gecko) Chrome/129.0 Safari/537.36",
  }
end

function request()
  n = n + 1
  local body = "csrf_token=" .. csrf .. "&started=" .. started
    .. "&email=reader." .. tag .. "." .. tid .. "." .. n .. "%40example.org"
    .. "&name=Ingrid+Hansen&consent=true&website="
  return wrk.format("POST", nil, headers, body)
end
