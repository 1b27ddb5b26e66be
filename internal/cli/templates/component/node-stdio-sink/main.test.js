'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { PassThrough } = require('node:stream');
const { serve } = require('./main.js');

test('one round trip of the stdio protocol', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  let answers = '';
  let written = '';
  output.on('data', (b) => { answers += b; });
  const done = serve(input, output, (s) => { written += s; });
  input.end('{"seq":1,"event":{"data":{"n":1}}}\n{"seq":2,"event":{"data":{"n":2}}}\n');
  await done;
  assert.strictEqual(written, '{"n":1}\n{"n":2}\n');
  assert.deepStrictEqual(answers.trim().split('\n').map((l) => JSON.parse(l)), [
    { seq: 1, done: true },
    { seq: 2, done: true },
  ]);
});
