-- GET /t/o/<token>: the open pixel, each request the next real token from a file (one path a
-- line, signed by the product for real deliveries), as a mail client fetches it.
-- Argument (after --): the file's path. Threads start at different places in the list.
dofile("report.lua")

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  i = (tid - 1) * 7919 % #paths
  wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
    .. "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0 Safari/537.36"
  wrk.headers["Accept"] = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
