'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { PassThrough } = require('node:stream');
const { run } = require('./main.js');

test('emits COUNT numbered events', async () => {
  const output = new PassThrough();
  let text = '';
  output.on('data', (b) => { text += b; });
  await run(output, 3);
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepStrictEqual(lines.map((l) => l.event.data.n), [1, 2, 3]);
  assert.strictEqual(lines[0].event.id, '{{NAME}}-1');
});
