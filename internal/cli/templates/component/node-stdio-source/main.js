// {{NAME}}: a flowctl source over protocol stdio (node's standard library only).
//
// It writes one event per line on stdout, {"event": {...}}: COUNT numbered
// events (default 1000), then it ends. See flowctl's docs/protocols.md.
'use strict';

// event is the component's logic: the n-th event. Put your own reading here.
function event(n) {
  return { id: `{{NAME}}-${n}`, data: { n } };
}

// run writes count events on output, waiting whenever output is full.
async function run(output, count) {
  for (let n = 1; n <= count; n++) {
    if (!output.write(JSON.stringify({ event: event(n) }) + '\n')) {
      await new Promise((resolve) => output.once('drain', resolve));
    }
  }
}

module.exports = { event, run };

if (require.main === module) {
  const count = Number.parseInt(process.env.COUNT || '1000', 10);
  if (!(count >= 0)) {
    console.error(`COUNT=${process.env.COUNT}: give a whole number of events`);
    process.exit(2);
  }
  run(process.stdout, count);
}
