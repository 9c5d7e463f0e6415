-- wrk script for bench/flood: closed-loop POST /hits floods.
-- Each request is a JSON array of HITS hits (default 500) for visitors drawn
-- uniformly from VISITORS distinct clientids; bodies are built once per
-- thread (a pool of 32, each with its own seed) so wrk spends its time
-- sending, not formatting. Counts answers by status per thread; done()
-- prints one machine-readable line the script parses.
local hits = tonumber(os.getenv("FLOOD_HITS") or "500")
local visitors = tonumber(os.getenv("FLOOD_VISITORS") or "100000")
local key = os.getenv("FLOOD_KEY")
local threads = {}
local pool, next_body = {}, 1
accepted_requests, refused, other, with_retry_after = 0, 0, 0, 0

function setup(thread)
    thread:set("thread_id", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    math.randomseed(1000003 * thread_id + os.time())
    local genders = { "M", "F", "m", "f", "" }
    for b = 1, 32 do
        local parts = {}
        for i = 1, hits do
            local g = genders[math.random(1, #genders)]
            parts[i] = string.format('{"clientid":"v%d","pageGender":"%s"}', math.random(0, visitors - 1), g)
        end
        pool[b] = "[" .. table.concat(parts, ",") .. "]"
    end
    wrk.method = "POST"
    wrk.headers["content-type"] = "application/json"
    wrk.headers["x-api-key"] = key
end

function request()
    local body = pool[next_body]
    next_body = next_body % #pool + 1
    return wrk.format(nil, "/hits", nil, body)
end

function response(status, headers, body)
    if status == 202 then
        accepted_requests = accepted_requests + 1
    elseif status == 503 then
        refused = refused + 1
        if headers["Retry-After"] or headers["retry-after"] then
            with_retry_after = with_retry_after + 1
        end
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local a, r, o, ra = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("accepted_requests")
        r = r + t:get("refused")
        o = o + t:get("other")
        ra = ra + t:get("with_retry_after")
    end
    io.write(string.format("FLOOD accepted_requests=%d refused=%d other=%d refused_with_retry_after=%d socket_errors=%d p99_ms=%.2f\n",
        a, r, o, ra, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(99) / 1000))
end
