// {{NAME}}: a flowctl sink over protocol stdio (node's standard library only).
//
// flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
// This appends the event's payload as a JSON line to the file named by OUT_FILE
// (stderr when unset), then acknowledges it with {"seq": N, "done": true}.
// It ends at stdin EOF. See flowctl's docs/protocols.md.
'use strict';
const fs = require('node:fs');
const readline = require('node:readline');

// write is the component's logic: it stores one payload. Put your own output
// here; throw to fail the event.
function write(out, data) {
  out(JSON.stringify(data) + '\n');
}

// serve writes every input with out and acknowledges it on output. Returns
// a promise that resolves at the end of input.
function serve(input, output, out) {
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const msg = JSON.parse(line);
    let ans = { seq: msg.seq, done: true };
    try {
      write(out, msg.event && msg.event.data);
    } catch (e) {
      ans = { seq: msg.seq, error: String(e && e.message ? e.message : e) };
    }
    if (!output.write(JSON.stringify(ans) + '\n')) {
      rl.pause();
      output.once('drain', () => rl.resume());
    }
  });
  return new Promise((resolve) => rl.on('close', resolve));
}

module.exports = { write, serve };

if (require.main === module) {
  const path = process.env.OUT_FILE;
  // appendFileSync: the payload is written before the event is acknowledged.
  const out = path ? (s) => fs.appendFileSync(path, s) : (s) => process.stderr.write(s);
  serve(process.stdin, process.stdout, out);
}
