'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { PassThrough } = require('node:stream');
const { process, serve } = require('./main.js');

test('process adds processed_by', () => {
  assert.deepStrictEqual(process({ n: 1 }), { n: 1, processed_by: '{{NAME}}' });
});

test('one round trip of the stdio protocol', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (b) => { text += b; });
  const done = serve(input, output);
  input.end('{"seq":1,"event":{"id":"a","data":{"n":1}}}\n{"seq":2,"event":{"id":"b","data":[1]}}\n');
  await done;
  const answers = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepStrictEqual(answers, [
    { seq: 1, data: { n: 1, processed_by: '{{NAME}}' }, done: true },
    { seq: 2, error: 'data is not a JSON object', permanent: true },
  ]);
});
