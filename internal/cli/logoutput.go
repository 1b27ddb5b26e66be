package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"time"
)

// componentOutput is where the external components' captured output
// lines go. The drivers write each line as "NAME | text". With
// --log-format json those lines become JSON records like the run's own
// (time, level, msg, component, source), so whoever reads the run's
// stderr as records (the flowctl server's log store, a log shipper) gets
// the component as a field instead of parsing text.
func (g *globals) componentOutput() io.Writer {
	if strings.EqualFold(g.logFormat, "json") {
		return &jsonComponentOutput{w: g.stderr, now: time.Now}
	}
	return g.stderr
}

// jsonComponentOutput turns "NAME | text" lines into JSON records.
type jsonComponentOutput struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// componentRecord is one line of a component's output as a record. The
// field order follows slog's JSON handler.
type componentRecord struct {
	Time      string `json:"time"`
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Component string `json:"component,omitempty"`
	Source    string `json:"source"`
}

func (o *jsonComponentOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		name, text, ok := strings.Cut(line, " | ")
		if !ok {
			name, text = "", line
		}
		rec, err := json.Marshal(componentRecord{
			Time: o.now().Format(time.RFC3339Nano), Level: "INFO", Msg: text,
			Component: name, Source: "component",
		})
		if err != nil {
			return 0, err
		}
		out.Write(rec)
		out.WriteByte('\n')
	}
	if _, err := o.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
