'use strict';
const test = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const { server } = require('./main.js');

test('one round trip of the http protocol', async () => {
  let written = '';
  const srv = server((s) => { written += s; });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const status = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: srv.address().port, method: 'POST', path: '/',
        headers: { 'Content-Type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end(JSON.stringify({ events: [{ id: 'a', data: { n: 1 } }, { id: 'b', data: { n: 2 } }] }));
    });
    assert.strictEqual(status, 200);
    assert.strictEqual(written, '{"n":1}\n{"n":2}\n');
  } finally {
    srv.close();
    srv.closeAllConnections();
  }
});
