// {{NAME}}: a flowctl sink over protocol http (node's built-in http module only).
//
// flowctl starts it with PORT=127.0.0.1:<port>, waits for GET /health, then POSTs
// each batch as {"events": [...]}. It appends each event's payload as a JSON line
// to the file named by OUT_FILE (stderr when unset) and answers 200 once the
// batch is written. SIGTERM stops it after the requests in flight.
// See flowctl's docs/protocols.md.
'use strict';
const fs = require('node:fs');
const http = require('node:http');

// write is the component's logic: it stores one batch of payloads. Put your
// own output here; throw to fail the batch (flowctl retries it).
function write(out, payloads) {
  out(payloads.map((d) => JSON.stringify(d) + '\n').join(''));
}

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

// server serves GET /health (flowctl waits for it at start) and POST / (a batch).
function server(out) {
  return http.createServer((req, res) => {
    if (req.method === 'GET') return reply(res, req.url === '/health' ? 200 : 404, { status: 'ok' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      let events;
      try {
        events = JSON.parse(body).events;
        if (!Array.isArray(events)) throw new Error('no "events" list');
      } catch (e) {
        return reply(res, 400, { error: `body is not a batch: ${e.message}` });
      }
      try {
        write(out, events.map((e) => e && e.data));
      } catch (e) {
        return reply(res, 500, { error: String(e && e.message ? e.message : e) });
      }
      reply(res, 200, {});
    });
  });
}

module.exports = { write, server };

if (require.main === module) {
  const path = process.env.OUT_FILE;
  // appendFileSync: the batch is written before it is acknowledged.
  const out = path ? (s) => fs.appendFileSync(path, s) : (s) => process.stderr.write(s);
  const addr = process.env.PORT || '127.0.0.1:8080';
  const i = addr.lastIndexOf(':');
  const srv = server(out);
  srv.listen(Number(addr.slice(i + 1)), addr.slice(0, i) || '127.0.0.1');
  process.on('SIGTERM', () => {
    srv.close(); // answers the requests in flight, then the process ends
    srv.closeIdleConnections();
  });
}
