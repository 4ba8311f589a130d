
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * scep_status in a browser: "?format=html" answers one self-contained
 * page (no external script, style or font: DMZ consoles often have no
 * internet) whose script reads the JSON of the same location every few
 * seconds and draws the gateway, its back ends and its traffic.
 *
 * The page's one inline style sheet and one inline script are allowed by
 * their SHA-256 hashes in a Content-Security-Policy that allows nothing
 * else: no other script, no event handler attribute, no style attribute,
 * no connection but to this origin, no framing; Trusted Types forbid
 * markup from strings.  The script writes every value from the gateway
 * with textContent, so a back end's reason that holds markup is shown
 * as text.
 *
 * Hashes rather than a second URL for the script: the page stays one
 * response, and the policy admits exactly this script, where 'self'
 * would admit anything the origin serves.  They are computed from the
 * literals below when the configuration is read, so the page can be
 * edited here without a hash to keep in step, and a request only sends
 * the policy made then.
 *
 * The page is kept as string literals, as nginx keeps its own error
 * pages, in four parts: the head, the style sheet, the body and the
 * script.
 */


#include "ngx_http_scep_module.h"

/* after nginx's headers: ngx_config.h must come first */
#include <openssl/evp.h>


/* "'sha256-" base64 of 32 bytes "'" */
#define NGX_HTTP_SCEP_DASHBOARD_HASH_LEN  (sizeof("'sha256-'") - 1 + 44)


static void ngx_http_scep_dashboard_hash(u_char *md, u_char *out);
static ngx_int_t ngx_http_scep_dashboard_header(ngx_http_request_t *r,
    char *key, u_char *value, size_t len);


static ngx_str_t  ngx_http_scep_dashboard_head = ngx_string(
"<!DOCTYPE html>\n"
"<html lang=\"en\">\n"
"<head>\n"
"<meta charset=\"utf-8\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>SCEP gateway status</title>\n"
"<style>"
);


static ngx_str_t  ngx_http_scep_dashboard_css = ngx_string(
":root {\n"
"    --bg: #f4f6f8; --card: #fff; --ink: #1f2328; --muted: #59636e;\n"
"    --line: #d8dee4; --up: #1a7f37; --down: #cf222e; --checking: #9a6700;\n"
"    --warn-bg: #fff8c5; --bad-bg: #ffebe9; --good-bg: #dafbe1;\n"
"}\n"
"* { box-sizing: border-box; }\n"
"body {\n"
"    margin: 0; background: var(--bg); color: var(--ink);\n"
"    font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto,\n"
"          \"Noto Sans\", \"DejaVu Sans\", sans-serif;\n"
"}\n"
"header {\n"
"    display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 18px;\n"
"    padding: 14px 24px; background: #24292f; color: #fff;\n"
"}\n"
"header h1 { margin: 0; font-size: 20px; font-weight: 600; }\n"
"header .meta { color: #d0d7de; }\n"
"header .updated { margin-left: auto; color: #d0d7de; }\n"
"main { padding: 16px 24px 32px; max-width: 1400px; margin: 0 auto; }\n"
"h2 { font-size: 16px; margin: 22px 0 8px; }\n"
".banner {\n"
"    padding: 10px 14px; margin-bottom: 12px; border-radius: 6px;\n"
"    background: var(--bad-bg); border: 1px solid #ff8182;\n"
"    color: var(--down); font-weight: 600;\n"
"}\n"
".tiles {\n"
"    display: grid; gap: 10px;\n"
"    grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));\n"
"}\n"
".tile {\n"
"    background: var(--card); border: 1px solid var(--line);\n"
"    border-radius: 6px; padding: 10px 12px;\n"
"}\n"
".tile .label { color: var(--muted); font-size: 12px; }\n"
".tile .value {\n"
"    font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums;\n"
"}\n"
".tile .sub { color: var(--muted); font-size: 12px; }\n"
".tile.alert { border-color: var(--down); background: var(--bad-bg); }\n"
".upstream {\n"
"    background: var(--card); border: 1px solid var(--line);\n"
"    border-radius: 6px; margin-bottom: 12px; overflow-x: auto;\n"
"}\n"
".upstream h3 {\n"
"    margin: 0; padding: 8px 12px; font-size: 15px;\n"
"    border-bottom: 1px solid var(--line); background: #f6f8fa;\n"
"}\n"
".upstream h3 .count { font-weight: 400; color: var(--muted); }\n"
".upstream h3 .count.bad { color: var(--down); font-weight: 600; }\n"
"table { border-collapse: collapse; width: 100%; }\n"
"th, td {\n"
"    text-align: left; vertical-align: top; padding: 7px 12px;\n"
"    border-bottom: 1px solid var(--line);\n"
"}\n"
"tr:last-child td { border-bottom: 0; }\n"
"th { font-size: 12px; color: var(--muted); font-weight: 600; }\n"
"td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }\n"
".addr { font-family: ui-monospace, \"DejaVu Sans Mono\", monospace; }\n"
".state {\n"
"    display: inline-block; min-width: 72px; text-align: center;\n"
"    padding: 1px 8px; border-radius: 10px; color: #fff;\n"
"    font-weight: 600; font-size: 12px; text-transform: uppercase;\n"
"}\n"
".state.up { background: var(--up); }\n"
".state.down { background: var(--down); }\n"
".state.checking { background: var(--checking); }\n"
"tr.down td { background: #fff5f5; }\n"
".reason { max-width: 420px; overflow-wrap: anywhere; }\n"
".reason.bad { color: var(--down); font-weight: 600; }\n"
".muted, .sub { color: var(--muted); }\n"
".cert { white-space: nowrap; }\n"
".cert .role {\n"
"    display: inline-block; width: 26px; font-size: 11px; font-weight: 600;\n"
"    color: var(--muted);\n"
"}\n"
".cert .days { font-variant-numeric: tabular-nums; padding: 0 4px; }\n"
".cert.expiring .days {\n"
"    background: var(--warn-bg); color: #7d4e00; font-weight: 600;\n"
"    border-radius: 3px;\n"
"}\n"
".cert.critical .days {\n"
"    background: var(--bad-bg); color: var(--down); font-weight: 600;\n"
"    border-radius: 3px;\n"
"}\n"
".warning { color: #7d4e00; }\n"
".charts {\n"
"    display: grid; gap: 12px;\n"
"    grid-template-columns: repeat(auto-fit, minmax(360px, 1fr));\n"
"}\n"
"figure {\n"
"    margin: 0; background: var(--card); border: 1px solid var(--line);\n"
"    border-radius: 6px; padding: 10px 12px;\n"
"}\n"
"figcaption { font-weight: 600; margin-bottom: 4px; }\n"
"figcaption .max { float: right; font-weight: 400; color: var(--muted); }\n"
"svg.chart { display: block; width: 100%; height: 120px; }\n"
"svg.chart .grid { stroke: var(--line); stroke-width: 1; }\n"
"svg.chart polyline { fill: none; stroke-width: 2; }\n"
".axis {\n"
"    display: flex; justify-content: space-between; color: var(--muted);\n"
"    font-size: 11px;\n"
"}\n"
".legend {\n"
"    display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px;\n"
"}\n"
".legend .sw {\n"
"    display: inline-block; width: 10px; height: 10px; margin-right: 4px;\n"
"    border-radius: 2px;\n"
"}\n"
".empty { color: var(--muted); font-size: 12px; padding: 8px 0; }\n"
".s0 { stroke: #0969da; background: #0969da; }\n"
".s1 { stroke: #1a7f37; background: #1a7f37; }\n"
".s2 { stroke: #8250df; background: #8250df; }\n"
".s3 { stroke: #bc4c00; background: #bc4c00; }\n"
".s4 { stroke: #6e7781; background: #6e7781; }\n"
".s5 { stroke: #cf222e; background: #cf222e; }\n"
".s6 { stroke: #bf3989; background: #bf3989; }\n"
".s7 { stroke: #1b7c83; background: #1b7c83; }\n"
"footer { color: var(--muted); font-size: 12px; margin-top: 20px; }\n"
"footer a { color: #0969da; }\n"
);


static ngx_str_t  ngx_http_scep_dashboard_body = ngx_string(
"</style>\n"
"</head>\n"
"<body>\n"
"<header>\n"
"<h1>SCEP gateway</h1>\n"
"<span class=\"meta\" id=\"meta\"></span>\n"
"<span class=\"updated\" id=\"updated\">loading...</span>\n"
"</header>\n"
"<main>\n"
"<div class=\"banner\" id=\"error\" hidden></div>\n"
"<noscript><div class=\"banner\">This page needs JavaScript. The same\n"
"data: <a href=\"?format=json\">JSON</a>,\n"
"<a href=\"?format=prometheus\">Prometheus</a>.</div></noscript>\n"
"<div class=\"tiles\" id=\"tiles\"></div>\n"
"<h2>Back ends</h2>\n"
"<div id=\"upstreams\"><p class=\"empty\">No upstream has\n"
"scep_health_check.</p></div>\n"
"<h2>Traffic, last 10 minutes</h2>\n"
"<div class=\"charts\">\n"
"<figure id=\"chart-ops\"></figure>\n"
"<figure id=\"chart-rejects\"></figure>\n"
"<figure id=\"chart-limits\"></figure>\n"
"</div>\n"
"<footer>Refreshed every 5 seconds from this location's JSON.\n"
"Raw data: <a href=\"?format=json\">JSON</a>,\n"
"<a href=\"?format=prometheus\">Prometheus</a>.</footer>\n"
"</main>\n"
"<script>"
);


static ngx_str_t  ngx_http_scep_dashboard_js = ngx_string(
"'use strict';\n"
"(function () {\n"
"    var POLL_MS = 5000;\n"
"    var WINDOW_S = 600;\n"
"    var OPS = ['GetCACert', 'GetCACaps', 'GetNextCACert', 'PKIOperation',\n"
"               'other'];\n"
"    var SVG = 'http://www.w3.org/2000/svg';\n"
"    var samples = [];\n"
"    var last = null;\n"
"\n"
"    /* every text from the gateway goes through textContent */\n"
"    function el(tag, cls, text) {\n"
"        var e = document.createElement(tag);\n"
"        if (cls) {\n"
"            e.className = cls;\n"
"        }\n"
"        if (text !== undefined && text !== null) {\n"
"            e.textContent = String(text);\n"
"        }\n"
"        return e;\n"
"    }\n"
"\n"
"    function add(parent, child) {\n"
"        parent.appendChild(child);\n"
"        return child;\n"
"    }\n"
"\n"
"    function num(v) {\n"
"        return typeof v === 'number' && isFinite(v) ? v : 0;\n"
"    }\n"
"\n"
"    function duration(s) {\n"
"        s = Math.max(0, Math.floor(num(s)));\n"
"        var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),\n"
"            m = Math.floor(s % 3600 / 60);\n"
"        if (d > 0) {\n"
"            return d + ' d ' + h + ' h';\n"
"        }\n"
"        if (h > 0) {\n"
"            return h + ' h ' + m + ' min';\n"
"        }\n"
"        if (m > 0) {\n"
"            return m + ' min ' + (s % 60) + ' s';\n"
"        }\n"
"        return s + ' s';\n"
"    }\n"
"\n"
"    function pad(n) {\n"
"        return n < 10 ? '0' + n : String(n);\n"
"    }\n"
"\n"
"    function when(t) {\n"
"        var d = new Date(num(t) * 1000);\n"
"        return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-'\n"
"               + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':'\n"
"               + pad(d.getMinutes()) + ':' + pad(d.getSeconds());\n"
"    }\n"
"\n"
"    function rate(v) {\n"
"        if (v >= 100) {\n"
"            return v.toFixed(0);\n"
"        }\n"
"        return v >= 10 ? v.toFixed(1) : v.toFixed(2);\n"
"    }\n"
"\n"
"    function tile(parent, label, value, sub, alert) {\n"
"        var t = add(parent, el('div', alert ? 'tile alert' : 'tile'));\n"
"        add(t, el('div', 'label', label));\n"
"        add(t, el('div', 'value', value));\n"
"        add(t, el('div', 'sub', sub || '\\u00a0'));\n"
"    }\n"
"\n"
"    function renderGateway(doc, now) {\n"
"        var g = doc.gateway || {}, q = doc.requests || {},\n"
"            resp = q.responses || {}, cache = q.ca_cache || {},\n"
"            rej = 0, hits = 0, k,\n"
"            tiles = document.getElementById('tiles'),\n"
"            reloads = Math.max(0, num(g.generation) - 1);\n"
"\n"
"        for (k in q.rejected || {}) {\n"
"            rej += num(q.rejected[k]);\n"
"        }\n"
"\n"
"        /* by operation: GetCACaps, GetCACert */\n"
"        for (k in cache.hits || {}) {\n"
"            hits += num(cache.hits[k]);\n"
"        }\n"
"\n"
"        document.getElementById('meta').textContent =\n"
"            location.host + ': nginx ' + (g.nginx_version || '?')\n"
"            + ', module ' + (g.module_version || '?');\n"
"        document.title = 'SCEP gateway ' + location.host;\n"
"\n"
"        tiles.replaceChildren();\n"
"        tile(tiles, 'Uptime', duration(g.uptime),\n"
"             'since ' + when(g.started));\n"
"        tile(tiles, 'Reloads', reloads,\n"
"             'configuration generation ' + num(g.generation));\n"
"        tile(tiles, 'Workers', num(g.workers), 'worker processes');\n"
"        tile(tiles, 'Requests', num(q.total),\n"
"             num(resp['2xx']) + ' 2xx, ' + num(resp['4xx']) + ' 4xx, '\n"
"             + num(resp['5xx']) + ' 5xx');\n"
"        tile(tiles, 'Rejected', rej, 'answered by the gateway itself');\n"
"        tile(tiles, '429 rate limited', num(q.rate_limited), 'limit_req');\n"
"        tile(tiles, '503 no healthy back end', num(q.no_healthy_backend),\n"
"             'no server was up', num(q.no_healthy_backend) > 0\n"
"             && stateCounts(doc).up === 0);\n"
"        tile(tiles, 'Cache hits', hits, num(cache.misses) + ' misses, '\n"
"             + num(cache.stale_hits) + ' stale');\n"
"        last = now;\n"
"    }\n"
"\n"
"    function stateCounts(doc) {\n"
"        var c = { up: 0, total: 0 }, u, p, peers;\n"
"        for (u in doc.upstreams || {}) {\n"
"            peers = doc.upstreams[u].peers || [];\n"
"            for (p = 0; p < peers.length; p++) {\n"
"                c.total++;\n"
"                if (peers[p].state === 'up') {\n"
"                    c.up++;\n"
"                }\n"
"            }\n"
"        }\n"
"        return c;\n"
"    }\n"
"\n"
"    var STATE_WORDS = {\n"
"        up: 'serving requests',\n"
"        down: 'taken out of rotation',\n"
"        checking: 'waiting for its first good probe'\n"
"    };\n"
"\n"
"    function certCell(td, p) {\n"
"        var certs = p.certificates || [], i, c, d, cls, line, days;\n"
"        if (certs.length === 0) {\n"
"            add(td, el('span', 'muted', 'none seen yet'));\n"
"        }\n"
"        for (i = 0; i < certs.length; i++) {\n"
"            c = certs[i];\n"
"            d = num(c.days_left);\n"
"            cls = 'cert';\n"
"            if (d <= 7) {\n"
"                cls += ' critical';\n"
"            } else if (c.expiring) {\n"
"                cls += ' expiring';\n"
"            }\n"
"            line = add(td, el('div', cls));\n"
"            line.title = 'serial ' + c.serial + ', expires '\n"
"                         + when(c.not_after);\n"
"            add(line, el('span', 'role', c.role));\n"
"            add(line, el('span', null, c.subject));\n"
"            days = d < 0 ? 'expired' : d === 1 ? '1 day left'\n"
"                                             : d + ' days left';\n"
"            add(line, document.createTextNode(' '));\n"
"            add(line, el('span', 'days', days));\n"
"        }\n"
"        if (p.warning) {\n"
"            add(td, el('div', 'warning', p.warning));\n"
"        }\n"
"    }\n"
"\n"
"    function peerRow(tbody, name, p, now) {\n"
"        var tr = add(tbody, el('tr', 'peer ' + p.state)), td, r, bad;\n"
"        tr.dataset.upstream = name;\n"
"        tr.dataset.peer = p.address;\n"
"        tr.dataset.state = p.state;\n"
"\n"
"        add(tr, el('td', 'addr', p.address));\n"
"\n"
"        td = add(tr, el('td'));\n"
"        add(td, el('span', 'state ' + p.state, p.state));\n"
"\n"
"        bad = p.state !== 'up';\n"
"        td = add(tr, el('td', bad ? 'reason bad' : 'reason'));\n"
"        if (p.state !== 'up' && p.reason) {\n"
"            td.textContent = p.reason;\n"
"        } else {\n"
"            td.textContent = STATE_WORDS[p.state] || p.state;\n"
"            if (p.reason) {\n"
"                add(td, el('div', 'sub', 'last failure: ' + p.reason));\n"
"            }\n"
"        }\n"
"\n"
"        td = add(tr, el('td', 'num', duration(now - num(p.last_change))));\n"
"        add(td, el('div', 'sub', when(p.last_change)));\n"
"\n"
"        td = add(tr, el('td', 'num'));\n"
"        if (p.last_check === null || p.last_check === undefined) {\n"
"            td.textContent = 'not yet';\n"
"        } else {\n"
"            td.textContent = (p.last_result || '?') + ', '\n"
"                             + num(p.latency_ms) + ' ms';\n"
"            add(td, el('div', 'sub', duration(now - num(p.last_check))\n"
"                                     + ' ago, ' + num(p.checks)\n"
"                                     + ' probes'));\n"
"        }\n"
"\n"
"        certCell(add(tr, el('td')), p);\n"
"\n"
"        r = p.responses || {};\n"
"        td = add(tr, el('td', 'num', num(p.requests) + ' requests'));\n"
"        add(td, el('div', 'sub', num(r['5xx']) + ' 5xx, '\n"
"                                 + num(p.failovers) + ' failovers'));\n"
"    }\n"
"\n"
"    function renderUpstreams(doc, now) {\n"
"        var box = document.getElementById('upstreams'),\n"
"            names = Object.keys(doc.upstreams || {}), i, j, up,\n"
"            peers, sec, h, t, tr, head, tbody, nup, cnt;\n"
"\n"
"        box.replaceChildren();\n"
"        if (names.length === 0) {\n"
"            add(box, el('p', 'empty',\n"
"                        'No upstream has scep_health_check.'));\n"
"            return;\n"
"        }\n"
"        head = ['Server', 'State', 'Reason', 'Since', 'Last probe',\n"
"                'Certificates', 'Traffic'];\n"
"\n"
"        for (i = 0; i < names.length; i++) {\n"
"            up = doc.upstreams[names[i]];\n"
"            peers = up.peers || [];\n"
"            nup = 0;\n"
"            for (j = 0; j < peers.length; j++) {\n"
"                nup += peers[j].state === 'up' ? 1 : 0;\n"
"            }\n"
"            sec = add(box, el('section', 'upstream'));\n"
"            sec.dataset.upstream = names[i];\n"
"            h = add(sec, el('h3', null, 'upstream ' + names[i] + ' '));\n"
"            cnt = nup + ' of ' + peers.length + ' up';\n"
"            if (nup === 0) {\n"
"                cnt += ': no healthy back end';\n"
"            }\n"
"            add(h, el('span', nup < peers.length ? 'count bad' : 'count',\n"
"                      cnt));\n"
"            t = add(sec, el('table'));\n"
"            tr = add(add(t, el('thead')), el('tr'));\n"
"            for (j = 0; j < head.length; j++) {\n"
"                add(tr, el('th', null, head[j]));\n"
"            }\n"
"            tbody = add(t, el('tbody'));\n"
"            for (j = 0; j < peers.length; j++) {\n"
"                peerRow(tbody, names[i], peers[j], now);\n"
"            }\n"
"        }\n"
"    }\n"
"\n"
"    /* counters of a document, for the rates between two polls */\n"
"    function sample(doc, t) {\n"
"        var q = doc.requests || {}, s = { t: t, ops: {}, rej: {} }, k;\n"
"        for (k = 0; k < OPS.length; k++) {\n"
"            s.ops[OPS[k]] = num((q.operations || {})[OPS[k]]);\n"
"        }\n"
"        for (k in q.rejected || {}) {\n"
"            s.rej[k] = num(q.rejected[k]);\n"
"        }\n"
"        s.rl = num(q.rate_limited);\n"
"        s.nh = num(q.no_healthy_backend);\n"
"        s.total = num(q.total);\n"
"        return s;\n"
"    }\n"
"\n"
"    /* [{ name, points: [[t, per second], ...], sum }] */\n"
"    function series(names, get) {\n"
"        var out = [], i, j, a, b, dt, v, pts, sum;\n"
"        for (i = 0; i < names.length; i++) {\n"
"            pts = [];\n"
"            sum = 0;\n"
"            for (j = 1; j < samples.length; j++) {\n"
"                a = samples[j - 1];\n"
"                b = samples[j];\n"
"                dt = b.t - a.t;\n"
"                v = Math.max(0, get(b, names[i]) - get(a, names[i]));\n"
"                sum += v;\n"
"                pts.push([b.t, dt > 0 ? v / dt : 0]);\n"
"            }\n"
"            out.push({ name: names[i], points: pts, sum: sum });\n"
"        }\n"
"        return out;\n"
"    }\n"
"\n"
"    function chart(id, title, list, now) {\n"
"        var fig = document.getElementById(id), W = 600, H = 120,\n"
"            max = 0, i, j, x, y, svg, g, pl, pts, cap, leg, item, ax;\n"
"\n"
"        for (i = 0; i < list.length; i++) {\n"
"            for (j = 0; j < list[i].points.length; j++) {\n"
"                max = Math.max(max, list[i].points[j][1]);\n"
"            }\n"
"        }\n"
"\n"
"        fig.replaceChildren();\n"
"        cap = add(fig, el('figcaption', null, title));\n"
"        add(cap, el('span', 'max', 'peak ' + rate(max) + '/s'));\n"
"\n"
"        svg = add(fig, document.createElementNS(SVG, 'svg'));\n"
"        svg.setAttribute('class', 'chart');\n"
"        svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);\n"
"        svg.setAttribute('preserveAspectRatio', 'none');\n"
"        for (i = 0; i <= 4; i++) {\n"
"            g = add(svg, document.createElementNS(SVG, 'line'));\n"
"            g.setAttribute('class', 'grid');\n"
"            g.setAttribute('x1', 0);\n"
"            g.setAttribute('x2', W);\n"
"            g.setAttribute('y1', 1 + i * (H - 2) / 4);\n"
"            g.setAttribute('y2', 1 + i * (H - 2) / 4);\n"
"        }\n"
"        for (i = 0; i < list.length; i++) {\n"
"            pts = [];\n"
"            for (j = 0; j < list[i].points.length; j++) {\n"
"                x = (list[i].points[j][0] - now + WINDOW_S) * W / WINDOW_S;\n"
"                y = H - 1 - (max > 0 ? list[i].points[j][1] / max : 0)\n"
"                            * (H - 2);\n"
"                pts.push(x.toFixed(1) + ',' + y.toFixed(1));\n"
"            }\n"
"            pl = add(svg, document.createElementNS(SVG, 'polyline'));\n"
"            pl.setAttribute('class', 's' + (list[i].color % 8));\n"
"            pl.setAttribute('points', pts.join(' '));\n"
"            pl.setAttribute('vector-effect', 'non-scaling-stroke');\n"
"        }\n"
"\n"
"        ax = add(fig, el('div', 'axis'));\n"
"        add(ax, el('span', null, '-10 min'));\n"
"        add(ax, el('span', null, 'now'));\n"
"\n"
"        leg = add(fig, el('div', 'legend'));\n"
"        if (samples.length < 2) {\n"
"            add(leg, el('span', 'empty',\n"
"                        'collecting: the rates need two polls'));\n"
"        } else if (list.length === 0) {\n"
"            add(leg, el('span', 'empty', 'none in the last 10 minutes'));\n"
"        }\n"
"        for (i = 0; i < list.length; i++) {\n"
"            item = add(leg, el('span', 'item'));\n"
"            add(item, el('span', 'sw s' + (list[i].color % 8)));\n"
"            add(item, document.createTextNode(list[i].label + ': '\n"
"                                              + list[i].sum));\n"
"        }\n"
"    }\n"
"\n"
"    function renderCharts(now) {\n"
"        var ops, rej, lim, names, k, i;\n"
"\n"
"        ops = series(OPS, function (x, n) { return x.ops[n]; });\n"
"        for (i = 0; i < ops.length; i++) {\n"
"            ops[i].label = ops[i].name;\n"
"            ops[i].color = i;\n"
"        }\n"
"        chart('chart-ops', 'Requests per second by operation', ops, now);\n"
"\n"
"        names = [];\n"
"        for (k in samples.length ? samples[samples.length - 1].rej : {}) {\n"
"            names.push(k);\n"
"        }\n"
"        rej = series(names, function (x, n) { return num(x.rej[n]); });\n"
"        rej = rej.filter(function (x) { return x.sum > 0; });\n"
"        rej.sort(function (a, b) { return b.sum - a.sum; });\n"
"        for (i = 0; i < rej.length; i++) {\n"
"            rej[i].label = rej[i].name;\n"
"            rej[i].color = i;\n"
"        }\n"
"        chart('chart-rejects', 'Rejects per second by reason', rej, now);\n"
"\n"
"        lim = series(['rl', 'nh'], function (x, n) { return x[n]; });\n"
"        lim[0].label = '429 rate limited';\n"
"        lim[0].color = 3;\n"
"        lim[1].label = '503 no healthy back end';\n"
"        lim[1].color = 5;\n"
"        chart('chart-limits', '429 and 503 per second', lim, now);\n"
"    }\n"
"\n"
"    function render(doc) {\n"
"        var now = Date.now() / 1000, g, srv, s;\n"
"\n"
"        if (!doc || typeof doc !== 'object') {\n"
"            throw new Error('not a status document');\n"
"        }\n"
"\n"
"        /* times of the gateway are measured on its clock, not ours */\n"
"        g = doc.gateway || {};\n"
"        srv = num(g.started) > 0 ? num(g.started) + num(g.uptime) : now;\n"
"\n"
"        s = sample(doc, now);\n"
"        if (samples.length\n"
"            && s.total < samples[samples.length - 1].total)\n"
"        {\n"
"            samples = [];   /* a new zone: the counters started again */\n"
"        }\n"
"        samples.push(s);\n"
"        while (samples.length && samples[0].t < now - WINDOW_S) {\n"
"            samples.shift();\n"
"        }\n"
"\n"
"        renderGateway(doc, now);\n"
"        renderUpstreams(doc, srv);\n"
"        renderCharts(now);\n"
"\n"
"        document.getElementById('error').hidden = true;\n"
"        document.getElementById('updated').textContent =\n"
"            'updated ' + when(now);\n"
"        document.body.dataset.loaded = 'yes';\n"
"    }\n"
"\n"
"    function fail(err) {\n"
"        var e = document.getElementById('error');\n"
"        e.textContent = 'Cannot read the status: ' + err.message\n"
"                        + (last ? '. Showing the data of ' + when(last)\n"
"                                : '');\n"
"        e.hidden = false;\n"
"    }\n"
"\n"
"    function poll() {\n"
"        fetch(location.pathname, {\n"
"            cache: 'no-store',\n"
"            credentials: 'same-origin',\n"
"            headers: { 'Accept': 'application/json' }\n"
"        }).then(function (r) {\n"
"            if (!r.ok) {\n"
"                throw new Error('HTTP ' + r.status);\n"
"            }\n"
"            return r.json();\n"
"        }).then(render).catch(fail).then(function () {\n"
"            setTimeout(poll, POLL_MS);\n"
"        });\n"
"    }\n"
"\n"
"    poll();\n"
"})();\n"
);


static ngx_str_t  ngx_http_scep_dashboard_tail = ngx_string(
"</script>\n"
"</body>\n"
"</html>\n"
);


/*
 * The page's Content-Security-Policy, made once per configuration with
 * a scep_status location, in the configuration's pool.
 */

ngx_int_t
ngx_http_scep_dashboard_init(ngx_conf_t *cf, ngx_http_scep_main_conf_t *smcf)
{
    u_char        *csp, *p;
    u_char         js_md[EVP_MAX_MD_SIZE], css_md[EVP_MAX_MD_SIZE];
    size_t         len;
    unsigned int   js_len, css_len;

    static const char  csp_script[] = "default-src 'none'; script-src ";
    static const char  csp_style[] = "; style-src ";
    static const char  csp_rest[] = "; connect-src 'self'; img-src 'none';"
                                    " base-uri 'none'; form-action 'none';"
                                    " frame-ancestors 'none';"
                                    " require-trusted-types-for 'script';"
                                    " trusted-types 'none'";

    if (smcf->dashboard_csp.len) {
        return NGX_OK;
    }

    if (EVP_Digest(ngx_http_scep_dashboard_js.data,
                   ngx_http_scep_dashboard_js.len, js_md, &js_len,
                   EVP_sha256(), NULL)
        != 1
        || EVP_Digest(ngx_http_scep_dashboard_css.data,
                      ngx_http_scep_dashboard_css.len, css_md, &css_len,
                      EVP_sha256(), NULL)
           != 1
        || js_len != 32 || css_len != 32)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "scep_status: EVP_Digest(SHA-256) failed");
        return NGX_ERROR;
    }

    len = sizeof(csp_script) - 1 + NGX_HTTP_SCEP_DASHBOARD_HASH_LEN
          + sizeof(csp_style) - 1 + NGX_HTTP_SCEP_DASHBOARD_HASH_LEN
          + sizeof(csp_rest) - 1;

    csp = ngx_pnalloc(cf->pool, len);
    if (csp == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(csp, csp_script, sizeof(csp_script) - 1);

    ngx_http_scep_dashboard_hash(js_md, p);

    p += NGX_HTTP_SCEP_DASHBOARD_HASH_LEN;
    p = ngx_cpymem(p, csp_style, sizeof(csp_style) - 1);

    ngx_http_scep_dashboard_hash(css_md, p);

    p += NGX_HTTP_SCEP_DASHBOARD_HASH_LEN;
    p = ngx_cpymem(p, csp_rest, sizeof(csp_rest) - 1);

    smcf->dashboard_csp.data = csp;
    smcf->dashboard_csp.len = p - csp;

    return NGX_OK;
}


ngx_int_t
ngx_http_scep_dashboard(ngx_http_request_t *r)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_uint_t                  i;
    ngx_chain_t                 out[5];
    ngx_str_t                  *parts[5];
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (ngx_http_scep_dashboard_header(r, "Content-Security-Policy",
                                       smcf->dashboard_csp.data,
                                       smcf->dashboard_csp.len)
           != NGX_OK
        || ngx_http_scep_dashboard_header(r, "X-Content-Type-Options",
                                          (u_char *) "nosniff", 7)
           != NGX_OK
        || ngx_http_scep_dashboard_header(r, "Referrer-Policy",
                                          (u_char *) "no-referrer", 11)
           != NGX_OK
        || ngx_http_scep_dashboard_header(r, "Cache-Control",
                                          (u_char *) "no-store", 8)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    parts[0] = &ngx_http_scep_dashboard_head;
    parts[1] = &ngx_http_scep_dashboard_css;
    parts[2] = &ngx_http_scep_dashboard_body;
    parts[3] = &ngx_http_scep_dashboard_js;
    parts[4] = &ngx_http_scep_dashboard_tail;

    len = 0;

    for (i = 0; i < 5; i++) {
        len += parts[i]->len;
    }

    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    for (i = 0; i < 5; i++) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = parts[i]->data;
        b->last = parts[i]->data + parts[i]->len;
        b->memory = 1;

        out[i].buf = b;
        out[i].next = (i < 4) ? &out[i + 1] : NULL;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    return ngx_http_output_filter(r, &out[0]);
}


/* writes 'sha256-BASE64' of a digest, NGX_HTTP_SCEP_DASHBOARD_HASH_LEN bytes */

static void
ngx_http_scep_dashboard_hash(u_char *md, u_char *out)
{
    ngx_str_t  digest, b64;

    digest.data = md;
    digest.len = 32;

    out = ngx_cpymem(out, "'sha256-", 8);
    b64.data = out;
    ngx_encode_base64(&b64, &digest);
    out[b64.len] = '\'';
}


static ngx_int_t
ngx_http_scep_dashboard_header(ngx_http_request_t *r, char *key,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = value;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}
