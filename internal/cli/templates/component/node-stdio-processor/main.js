// {{NAME}}: a flowctl processor over protocol stdio (node's standard library only).
//
// flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
// For each, this answers {"seq": N, "data": ..., "done": true}: the event with a
// new payload, and the end of input N, in one line. Logs go to stderr; stdout
// carries the protocol only. It ends at stdin EOF. See flowctl's docs/protocols.md.
'use strict';
const readline = require('node:readline');

// process is the component's logic: it gets one payload and returns the new
// one. Put your own logic here; throw to fail the event.
function process(data) {
  data.processed_by = '{{NAME}}';
  return data;
}

// answer is the answer (an object) to one input line.
function answer(msg) {
  const data = msg.event && msg.event.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { seq: msg.seq, error: 'data is not a JSON object', permanent: true };
  }
  try {
    return { seq: msg.seq, data: process(data), done: true };
  } catch (e) {
    return { seq: msg.seq, error: String(e && e.message ? e.message : e) };
  }
}

// serve answers every line of input on output; it stops reading while
// output is full, so it never reads far ahead. Returns a promise that
// resolves at the end of input.
function serve(input, output) {
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    if (!output.write(JSON.stringify(answer(JSON.parse(line))) + '\n')) {
      rl.pause();
      output.once('drain', () => rl.resume());
    }
  });
  return new Promise((resolve) => rl.on('close', resolve));
}

module.exports = { process, answer, serve };

if (require.main === module) {
  serve(global.process.stdin, global.process.stdout);
}
