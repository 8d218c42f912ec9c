-- The yardstick: GET of the URL given to wrk (the hello-world route), nothing else.
dofile("report.lua")
wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
  .. "(KHTML, like Gecko) Chrome/129.0 Safari/537.36"
