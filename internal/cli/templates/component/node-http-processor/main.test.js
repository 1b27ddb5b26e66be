'use strict';
const test = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const { process, server } = require('./main.js');

function post(port, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/',
      headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('process adds processed_by', () => {
  assert.deepStrictEqual(process({ n: 1 }), { n: 1, processed_by: '{{NAME}}' });
});

test('one round trip of the http protocol', async () => {
  const srv = server();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const got = await post(srv.address().port, { events: [{ id: 'a', data: { n: 1 } }, { id: 'b', data: 'x' }] });
    assert.strictEqual(got.status, 200);
    assert.deepStrictEqual(got.body, { results: [
      { events: [{ data: { n: 1, processed_by: '{{NAME}}' } }] },
      { events: [], error: 'data is not a JSON object', permanent: true },
    ] });
  } finally {
    srv.close();
    srv.closeAllConnections();
  }
});
