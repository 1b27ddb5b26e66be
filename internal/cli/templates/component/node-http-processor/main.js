// {{NAME}}: a flowctl processor over protocol http (node's built-in http module only).
//
// flowctl starts it with PORT=127.0.0.1:<port>, waits for GET /health, then POSTs
// each batch as {"events": [...]}; it answers {"results": [...]}, one result per
// event, in order. SIGTERM stops it after the requests in flight.
// See flowctl's docs/protocols.md.
'use strict';
const http = require('node:http');

// process is the component's logic: it gets one payload and returns the new
// one. Put your own logic here; throw to fail the event.
function process(data) {
  data.processed_by = '{{NAME}}';
  return data;
}

function result(event) {
  const data = event && event.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { events: [], error: 'data is not a JSON object', permanent: true };
  }
  try {
    return { events: [{ data: process(data) }] };
  } catch (e) {
    return { events: [], error: String(e && e.message ? e.message : e) };
  }
}

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

// server serves GET /health (flowctl waits for it at start) and POST / (a batch).
function server() {
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
      reply(res, 200, { results: events.map(result) });
    });
  });
}

module.exports = { process, server };

if (require.main === module) {
  const addr = global.process.env.PORT || '127.0.0.1:8080';
  const i = addr.lastIndexOf(':');
  const srv = server();
  srv.listen(Number(addr.slice(i + 1)), addr.slice(0, i) || '127.0.0.1');
  global.process.on('SIGTERM', () => {
    srv.close(); // answers the requests in flight, then the process ends
    srv.closeIdleConnections();
  });
}
