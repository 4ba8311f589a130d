'use strict';
(function () {
    var POLL_MS = 5000;
    var WINDOW_S = 600;
    var OPS = ['GetCACert', 'GetCACaps', 'GetNextCACert', 'PKIOperation',
               'other'];
    /* the back ends' answers to enrollments, and their colours: green,
       orange, red (the classes s1, s3, s5) */
    var OUTCOMES = ['issued', 'pending', 'refused'];
    var OUTCOME_COLORS = [1, 3, 5];
    var SVG = 'http://www.w3.org/2000/svg';
    var samples = [];
    var last = null;

    /* every text from the gateway goes through textContent */
    function el(tag, cls, text) {
        var e = document.createElement(tag);
        if (cls) {
            e.className = cls;
        }
        if (text !== undefined && text !== null) {
            e.textContent = String(text);
        }
        return e;
    }

    function add(parent, child) {
        parent.appendChild(child);
        return child;
    }

    function num(v) {
        return typeof v === 'number' && isFinite(v) ? v : 0;
    }

    function duration(s) {
        s = Math.max(0, Math.floor(num(s)));
        var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
            m = Math.floor(s % 3600 / 60);
        if (d > 0) {
            return d + ' d ' + h + ' h';
        }
        if (h > 0) {
            return h + ' h ' + m + ' min';
        }
        if (m > 0) {
            return m + ' min ' + (s % 60) + ' s';
        }
        return s + ' s';
    }

    function pad(n) {
        return n < 10 ? '0' + n : String(n);
    }

    function when(t) {
        var d = new Date(num(t) * 1000);
        return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-'
               + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':'
               + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    }

    function rate(v) {
        if (v >= 100) {
            return v.toFixed(0);
        }
        return v >= 10 ? v.toFixed(1) : v.toFixed(2);
    }

    function tile(parent, label, value, sub, alert) {
        var t = add(parent, el('div', alert ? 'tile alert' : 'tile'));
        add(t, el('div', 'label', label));
        add(t, el('div', 'value', value));
        add(t, el('div', 'sub', sub || '\u00a0'));
    }

    function renderGateway(doc, now) {
        var g = doc.gateway || {}, q = doc.requests || {},
            resp = q.responses || {}, cache = q.ca_cache || {},
            rej = 0, hits = 0, k,
            tiles = document.getElementById('tiles'),
            reloads = Math.max(0, num(g.generation) - 1);

        for (k in q.rejected || {}) {
            rej += num(q.rejected[k]);
        }

        /* by operation: GetCACaps, GetCACert */
        for (k in cache.hits || {}) {
            hits += num(cache.hits[k]);
        }

        document.getElementById('meta').textContent =
            location.host + ': nginx ' + (g.nginx_version || '?')
            + ', module ' + (g.module_version || '?');
        document.title = 'SCEP gateway ' + location.host;

        tiles.replaceChildren();
        tile(tiles, 'Uptime', duration(g.uptime),
             'since ' + when(g.started));
        tile(tiles, 'Reloads', reloads,
             'configuration generation ' + num(g.generation));
        tile(tiles, 'Workers', num(g.workers), 'worker processes');
        tile(tiles, 'Requests', num(q.total),
             num(resp['2xx']) + ' 2xx, ' + num(resp['4xx']) + ' 4xx, '
             + num(resp['5xx']) + ' 5xx');
        tile(tiles, 'Rejected', rej, 'answered by the gateway itself');
        tile(tiles, 'Browser tests', num(q.browser_tests),
             'bare GETs of the SCEP URL, answered 403 or 503');
        tile(tiles, '429 rate limited', num(q.rate_limited), 'limit_req');
        tile(tiles, '503 no healthy back end', num(q.no_healthy_backend),
             'no server was up', num(q.no_healthy_backend) > 0
             && stateCounts(doc).up === 0);
        tile(tiles, 'Cache hits', hits, num(cache.misses) + ' misses, '
             + num(cache.stale_hits) + ' stale');
        last = now;
    }

    function stateCounts(doc) {
        var c = { up: 0, total: 0 }, u, p, peers;
        for (u in doc.upstreams || {}) {
            peers = doc.upstreams[u].peers || [];
            for (p = 0; p < peers.length; p++) {
                c.total++;
                if (peers[p].state === 'up' && !peers[p].down) {
                    c.up++;
                }
            }
        }
        return c;
    }

    var STATE_WORDS = {
        up: 'serving requests',
        down: 'taken out of rotation',
        checking: 'waiting for its first good probe'
    };

    function certCell(td, p) {
        var certs = p.certificates || [], i, c, d, cls, line, days;
        if (certs.length === 0) {
            add(td, el('span', 'muted', 'none seen yet'));
        }
        for (i = 0; i < certs.length; i++) {
            c = certs[i];
            d = num(c.days_left);
            cls = 'cert';
            if (d <= 7) {
                cls += ' critical';
            } else if (c.expiring) {
                cls += ' expiring';
            }
            line = add(td, el('div', cls));
            line.title = 'serial ' + c.serial + ', expires '
                         + when(c.not_after);
            add(line, el('span', 'role', c.role));
            add(line, el('span', null, c.subject));
            days = d < 0 ? 'expired' : d === 1 ? '1 day left'
                                             : d + ' days left';
            add(line, document.createTextNode(' '));
            add(line, el('span', 'days', days));
        }
        if (p.warning) {
            add(td, el('div', 'warning', p.warning));
        }
    }

    function peerRow(tbody, name, p, now, outcomes) {
        var tr = add(tbody, el('tr', 'peer ' + p.state)), td, r, bad;
        tr.dataset.upstream = name;
        tr.dataset.peer = p.address;
        tr.dataset.state = p.state;

        add(tr, el('td', 'addr', p.address));

        td = add(tr, el('td'));
        add(td, el('span', 'state ' + p.state, p.state));
        if (p.down) {
            add(td, document.createTextNode(' '));
            add(td, el('span', 'state down', 'marked down'));
        }

        bad = p.state !== 'up' || p.down;
        td = add(tr, el('td', bad ? 'reason bad' : 'reason'));
        if (p.down) {
            td.textContent = '"down" in the upstream: nginx sends it'
                             + ' nothing, the probes go on';
            if (p.reason) {
                add(td, el('div', 'sub', 'last failure: ' + p.reason));
            }
        } else if (p.state !== 'up' && p.reason) {
            td.textContent = p.reason;
        } else {
            td.textContent = STATE_WORDS[p.state] || p.state;
            if (p.reason) {
                add(td, el('div', 'sub', 'last failure: ' + p.reason));
            }
        }

        td = add(tr, el('td', 'num', duration(now - num(p.last_change))));
        add(td, el('div', 'sub', when(p.last_change)));

        td = add(tr, el('td', 'num'));
        if (p.last_check === null || p.last_check === undefined) {
            td.textContent = 'not yet';
        } else {
            td.textContent = (p.last_result || '?') + ', '
                             + num(p.latency_ms) + ' ms';
            add(td, el('div', 'sub', duration(now - num(p.last_check))
                                     + ' ago, ' + num(p.checks)
                                     + ' probes'));
        }

        certCell(add(tr, el('td')), p);

        r = p.responses || {};
        td = add(tr, el('td', 'num', num(p.requests) + ' requests'));
        add(td, el('div', 'sub', num(r['5xx']) + ' 5xx, '
                                 + num(p.failovers) + ' failovers'));

        /* scep_backend_limit: "waiting" is the upstream's one queue */
        if (p.limit && typeof p.limit === 'object') {
            add(td, el('div', 'sub', num(p.limit.in_flight) + ' of '
                                     + num(p.limit.max) + ' in flight, '
                                     + num(p.limit.waiting) + ' waiting, '
                                     + num(p.limit.busy) + ' busy'));
        }

        if (outcomes) {
            outcomeCell(add(tr, el('td', 'outcomes')), p.outcomes);
        }
    }

    /*
     * What the server answered to enrollments (its CertReps' pkiStatus):
     * issued and refused in the last 10 minutes, counted by the gateway,
     * with the totals since the zone was made under them.  Refused is
     * highlighted when it is most of the two, as ScepBackendRefusing
     * alerts.
     */
    function outcomeCell(td, o) {
        var recent, ok, no, t;

        if (!o || typeof o !== 'object') {
            add(td, el('span', 'muted', 'not counted'));
            return;
        }
        recent = o.last_10m || {};
        ok = num(recent.issued);
        no = num(recent.refused);

        t = add(td, el('div', 'tile peer'));
        t.dataset.outcome = 'issued';
        add(t, el('div', 'label', 'Issued, 10 min'));
        add(t, el('div', 'value', ok));
        add(t, el('div', 'sub', num(o.issued) + ' in all, '
                                + num(o.pending) + ' pending'));

        t = add(td, el('div', no > ok ? 'tile peer alert' : 'tile peer'));
        t.dataset.outcome = 'refused';
        add(t, el('div', 'label', 'Refused, 10 min'));
        add(t, el('div', 'value', no));
        add(t, el('div', 'sub', num((o.refused || {}).total)
                                + ' in all'));
    }

    /* the JSON of a gateway that reads its back ends' answers */
    function hasOutcomes(up) {
        var peers = up.peers || [], i;
        if (up.outcomes) {
            return true;
        }
        for (i = 0; i < peers.length; i++) {
            if (peers[i].outcomes) {
                return true;
            }
        }
        return false;
    }

    function renderUpstreams(doc, now) {
        var box = document.getElementById('upstreams'),
            names = Object.keys(doc.upstreams || {}), i, j, up,
            peers, sec, h, t, tr, head, tbody, nup, cnt, outcomes;

        box.replaceChildren();
        if (names.length === 0) {
            add(box, el('p', 'empty',
                        'No upstream has scep_health_check.'));
            return;
        }
        for (i = 0; i < names.length; i++) {
            up = doc.upstreams[names[i]];
            peers = up.peers || [];
            outcomes = hasOutcomes(up);
            head = ['Server', 'State', 'Reason', 'Since', 'Last probe',
                    'Certificates', 'Traffic'];
            if (outcomes) {
                head.push('Enrollments');
            }
            nup = 0;
            for (j = 0; j < peers.length; j++) {
                nup += peers[j].state === 'up' && !peers[j].down ? 1 : 0;
            }
            sec = add(box, el('section', 'upstream'));
            sec.dataset.upstream = names[i];
            h = add(sec, el('h3', null, 'upstream ' + names[i] + ' '));
            cnt = nup + ' of ' + peers.length + ' up';
            if (nup === 0) {
                cnt += ': no healthy back end';
            }
            add(h, el('span', nup < peers.length ? 'count bad' : 'count',
                      cnt));
            t = add(sec, el('table'));
            tr = add(add(t, el('thead')), el('tr'));
            for (j = 0; j < head.length; j++) {
                add(tr, el('th', null, head[j]));
            }
            tbody = add(t, el('tbody'));
            for (j = 0; j < peers.length; j++) {
                peerRow(tbody, names[i], peers[j], now, outcomes);
            }
        }
    }

    /* counters of a document, for the rates between two polls */
    function sample(doc, t) {
        var q = doc.requests || {}, s = { t: t, ops: {}, rej: {} }, k;
        for (k = 0; k < OPS.length; k++) {
            s.ops[OPS[k]] = num((q.operations || {})[OPS[k]]);
        }
        for (k in q.rejected || {}) {
            s.rej[k] = num(q.rejected[k]);
        }
        s.out = outcomeTotals(doc);
        s.rl = num(q.rate_limited);
        s.nh = num(q.no_healthy_backend);
        s.total = num(q.total);
        return s;
    }

    /*
     * issued, pending and refused over all upstreams, from each upstream's
     * sums or, without them, its servers'; null when the gateway counts
     * no outcomes
     */
    function outcomeTotals(doc) {
        var t = { issued: 0, pending: 0, refused: 0 }, seen = false,
            u, up, list, i, o;

        for (u in doc.upstreams || {}) {
            up = doc.upstreams[u] || {};
            list = up.outcomes ? [up.outcomes]
                               : (up.peers || []).map(function (p) {
                                     return p.outcomes;
                                 });
            for (i = 0; i < list.length; i++) {
                o = list[i];
                if (!o || typeof o !== 'object') {
                    continue;
                }
                seen = true;
                t.issued += num(o.issued);
                t.pending += num(o.pending);
                t.refused += num((o.refused || {}).total);
            }
        }
        return seen ? t : null;
    }

    /* [{ name, points: [[t, per second], ...], sum }] */
    function series(names, get) {
        var out = [], i, j, a, b, dt, v, pts, sum;
        for (i = 0; i < names.length; i++) {
            pts = [];
            sum = 0;
            for (j = 1; j < samples.length; j++) {
                a = samples[j - 1];
                b = samples[j];
                dt = b.t - a.t;
                v = Math.max(0, get(b, names[i]) - get(a, names[i]));
                sum += v;
                pts.push([b.t, dt > 0 ? v / dt : 0]);
            }
            out.push({ name: names[i], points: pts, sum: sum });
        }
        return out;
    }

    function chart(id, title, list, now) {
        var fig = document.getElementById(id), W = 600, H = 120,
            max = 0, i, j, x, y, svg, g, pl, pts, cap, leg, item, ax;

        for (i = 0; i < list.length; i++) {
            for (j = 0; j < list[i].points.length; j++) {
                max = Math.max(max, list[i].points[j][1]);
            }
        }

        fig.replaceChildren();
        cap = add(fig, el('figcaption', null, title));
        add(cap, el('span', 'max', 'peak ' + rate(max) + '/s'));

        svg = add(fig, document.createElementNS(SVG, 'svg'));
        svg.setAttribute('class', 'chart');
        svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
        svg.setAttribute('preserveAspectRatio', 'none');
        for (i = 0; i <= 4; i++) {
            g = add(svg, document.createElementNS(SVG, 'line'));
            g.setAttribute('class', 'grid');
            g.setAttribute('x1', 0);
            g.setAttribute('x2', W);
            g.setAttribute('y1', 1 + i * (H - 2) / 4);
            g.setAttribute('y2', 1 + i * (H - 2) / 4);
        }
        for (i = 0; i < list.length; i++) {
            pts = [];
            for (j = 0; j < list[i].points.length; j++) {
                x = (list[i].points[j][0] - now + WINDOW_S) * W / WINDOW_S;
                y = H - 1 - (max > 0 ? list[i].points[j][1] / max : 0)
                            * (H - 2);
                pts.push(x.toFixed(1) + ',' + y.toFixed(1));
            }
            pl = add(svg, document.createElementNS(SVG, 'polyline'));
            pl.setAttribute('class', 's' + (list[i].color % 8));
            pl.setAttribute('points', pts.join(' '));
            pl.setAttribute('vector-effect', 'non-scaling-stroke');
        }

        ax = add(fig, el('div', 'axis'));
        add(ax, el('span', null, '-10 min'));
        add(ax, el('span', null, 'now'));

        leg = add(fig, el('div', 'legend'));
        if (samples.length < 2) {
            add(leg, el('span', 'empty',
                        'collecting: the rates need two polls'));
        } else if (list.length === 0) {
            add(leg, el('span', 'empty', 'none in the last 10 minutes'));
        }
        for (i = 0; i < list.length; i++) {
            item = add(leg, el('span', 'item'));
            add(item, el('span', 'sw s' + (list[i].color % 8)));
            add(item, document.createTextNode(list[i].label + ': '
                                              + list[i].sum));
        }
    }

    function renderCharts(now) {
        var ops, rej, lim, out, fig, names, k, i;

        ops = series(OPS, function (x, n) { return x.ops[n]; });
        for (i = 0; i < ops.length; i++) {
            ops[i].label = ops[i].name;
            ops[i].color = i;
        }
        chart('chart-ops', 'Requests per second by operation', ops, now);

        names = [];
        for (k in samples.length ? samples[samples.length - 1].rej : {}) {
            names.push(k);
        }
        rej = series(names, function (x, n) { return num(x.rej[n]); });
        rej = rej.filter(function (x) { return x.sum > 0; });
        rej.sort(function (a, b) { return b.sum - a.sum; });
        for (i = 0; i < rej.length; i++) {
            rej[i].label = rej[i].name;
            rej[i].color = i;
        }
        chart('chart-rejects', 'Rejects per second by reason', rej, now);

        lim = series(['rl', 'nh'], function (x, n) { return x[n]; });
        lim[0].label = '429 rate limited';
        lim[0].color = 3;
        lim[1].label = '503 no healthy back end';
        lim[1].color = 5;
        chart('chart-limits', '429 and 503 per second', lim, now);

        /* only for a gateway that reads its back ends' answers */
        fig = document.getElementById('chart-outcomes');
        fig.hidden = !(samples.length && samples[samples.length - 1].out);
        if (fig.hidden) {
            return;
        }
        out = series(OUTCOMES, function (x, n) {
            return x.out ? x.out[n] : 0;
        });
        for (i = 0; i < out.length; i++) {
            out[i].label = out[i].name;
            out[i].color = OUTCOME_COLORS[i];
        }
        chart('chart-outcomes', 'Enrollment outcomes per second', out, now);
    }

    function render(doc) {
        var now = Date.now() / 1000, g, srv, s;

        if (!doc || typeof doc !== 'object') {
            throw new Error('not a status document');
        }

        /* times of the gateway are measured on its clock, not ours */
        g = doc.gateway || {};
        srv = num(g.started) > 0 ? num(g.started) + num(g.uptime) : now;

        s = sample(doc, now);
        if (samples.length
            && s.total < samples[samples.length - 1].total)
        {
            samples = [];   /* a new zone: the counters started again */
        }
        samples.push(s);
        while (samples.length && samples[0].t < now - WINDOW_S) {
            samples.shift();
        }

        renderGateway(doc, now);
        renderUpstreams(doc, srv);
        renderCharts(now);

        document.getElementById('error').hidden = true;
        document.getElementById('updated').textContent =
            'updated ' + when(now);
        document.body.dataset.loaded = 'yes';
    }

    function fail(err) {
        var e = document.getElementById('error');
        e.textContent = 'Cannot read the status: ' + err.message
                        + (last ? '. Showing the data of ' + when(last)
                                : '');
        e.hidden = false;
    }

    function poll() {
        fetch(location.pathname, {
            cache: 'no-store',
            credentials: 'same-origin',
            headers: { 'Accept': 'application/json' }
        }).then(function (r) {
            if (!r.ok) {
                throw new Error('HTTP ' + r.status);
            }
            return r.json();
        }).then(render).catch(fail).then(function () {
            setTimeout(poll, POLL_MS);
        });
    }

    poll();
})();
