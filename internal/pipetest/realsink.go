package pipetest

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"

	_ "modernc.org/sqlite" // the database a real sqlite sink writes, read back
)

// The values of sinks: in a test file or a case.
const (
	// SinksReal runs the file, http and sqlite sinks for real, redirected
	// (the default); other sinks are captures.
	SinksReal = "real"
	// SinksCapture replaces every sink by an in-memory capture.
	SinksCapture = "capture"
)

// output is where the expectations read what one sink was handed.
type output interface {
	// events are what the sink got (or wrote, decoded), in order.
	events() ([]got, error)
	// attributes reports whether the events carry their attributes (id,
	// type, ...); a real sink writing format: data keeps the data only.
	attributes() bool
	// describe says where the sink wrote, for a failure report.
	describe() string
}

// realSinkTypes are the built-in sinks a case runs for real.
var realSinkTypes = map[string]bool{"file": true, "http": true, "sqlite": true}

// redirect makes the real sink s write where the case can read it back:
// a file or database under dir, or a capture server on loopback. It
// returns nil when s is not a sink that runs for real (it is captured).
// The redirected sink is closed by close.
func redirect(s *spec.Component, dir string) (output, func(), error) {
	if s.Runner != spec.RunBuiltin || s.Ref != "" || !realSinkTypes[s.Type] {
		return nil, nil, nil
	}
	cfg := maps.Clone(s.Config)
	if cfg == nil {
		cfg = flow.Config{}
	}
	envelope := cfg["format"] == "envelope"
	sub := filepath.Join(dir, s.Name)
	switch s.Type {
	case "file":
		base := "out.jsonl"
		if p, ok := cfg["path"].(string); ok && p != "" {
			base = filepath.Base(p)
		}
		path := filepath.Join(sub, base)
		cfg["path"] = path
		delete(cfg, "append")
		cfg["mode"] = "truncate"
		s.Config = cfg
		return &fileOutput{path: path, envelope: envelope}, func() {}, nil
	case "sqlite":
		base := "out.db"
		if p, ok := cfg["path"].(string); ok && p != "" {
			base = filepath.Base(p)
		}
		path := filepath.Join(sub, base)
		cfg["path"] = path
		table, _ := cfg["table"].(string)
		s.Config = cfg
		return &sqliteOutput{path: path, table: table}, func() {}, nil
	case "http":
		c, err := newCaptureServer(envelope)
		if err != nil {
			return nil, nil, fmt.Errorf("sink %q: start a capture server: %w", s.Name, err)
		}
		cfg["url"] = c.url + "/" + s.Name
		s.Config = cfg
		return c, c.close, nil
	}
	return nil, nil, nil
}

// memOutput is an in-memory capture's output.
type memOutput struct{ c *capture }

func (m memOutput) events() ([]got, error) { return m.c.events(), nil }
func (m memOutput) attributes() bool       { return true }
func (m memOutput) describe() string       { return "captured in memory" }

// fileOutput reads back what a real file sink wrote: one event a line.
type fileOutput struct {
	path     string
	envelope bool
}

func (f *fileOutput) attributes() bool { return f.envelope }
func (f *fileOutput) describe() string { return "written to " + f.path }

func (f *fileOutput) events() ([]got, error) {
	fh, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // never opened: it got nothing
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []got
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.Clone(sc.Bytes())
		if !f.envelope {
			out = append(out, got{ev: &flow.Event{Data: line}, data: parseData(line)})
			continue
		}
		ev, err := decodeEnvelope(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", f.path, n, err)
		}
		out = append(out, got{ev: ev, data: parseData(ev.Data)})
	}
	return out, sc.Err()
}

// decodeEnvelope reads a CloudEvents JSON object as the sinks write it
// (format: envelope): extension attributes are metadata; data is inline
// JSON, a string of text, or data_base64.
func decodeEnvelope(b []byte) (*flow.Event, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a CloudEvents JSON object: %v", err)
	}
	ev := &flow.Event{}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	for k, v := range m {
		switch k {
		case "specversion", "dataschema", "data", "data_base64":
		case "id":
			ev.ID = str(k)
		case "source":
			ev.Source = str(k)
		case "type":
			ev.Type = str(k)
		case "subject":
			ev.Subject = str(k)
		case "datacontenttype":
			ev.DataContentType = str(k)
		case "time":
			t, err := time.Parse(time.RFC3339Nano, str(k))
			if err != nil {
				return nil, fmt.Errorf("time: %v", err)
			}
			ev.Time = t
		default:
			var s string
			if json.Unmarshal(v, &s) == nil {
				if ev.Metadata == nil {
					ev.Metadata = map[string]string{}
				}
				ev.Metadata[k] = s
			}
		}
	}
	if raw, ok := m["data_base64"]; ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("data_base64: %v", err)
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %v", err)
		}
		ev.Data = d
		return ev, nil
	}
	ev.Data = decodeDataValue(m["data"], ev.DataContentType)
	return ev, nil
}

// decodeDataValue turns a data value of an envelope or of the http sink's
// array back into the event's bytes: a JSON string stands for text when
// the content type is not JSON.
func decodeDataValue(raw json.RawMessage, contentType string) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' && !isJSONContent(contentType) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []byte(s)
		}
	}
	return bytes.Clone(raw)
}

// isJSONContent reports whether a datacontenttype says JSON (empty
// does: flowctl's default).
func isJSONContent(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "" || ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// sqliteOutput reads back the rows a real sqlite sink inserted, in rowid
// order, each as a JSON object of its columns.
type sqliteOutput struct {
	path, table string
}

func (s *sqliteOutput) attributes() bool { return false }
func (s *sqliteOutput) describe() string {
	return fmt.Sprintf("inserted into table %q of %s", s.table, s.path)
}

func (s *sqliteOutput) events() ([]got, error) {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	db, err := sql.Open("sqlite", s.path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", s.table).Scan(&n); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	if n == 0 {
		return nil, nil // no row was ever inserted, so no table either
	}
	rows, err := db.Query(`SELECT * FROM "` + escapeIdent(s.table) + `" ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("read table %q of %s: %w", s.table, s.path, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []got
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		obj := make(map[string]any, len(cols))
		for i, c := range cols {
			switch v := vals[i].(type) {
			case []byte:
				obj[c] = string(v)
			case int64:
				obj[c] = json.Number(strconv.FormatInt(v, 10))
			case float64:
				obj[c] = json.Number(strconv.FormatFloat(v, 'g', -1, 64))
			default:
				obj[c] = v // string, nil
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, got{ev: &flow.Event{Data: b}, data: parseData(b)})
	}
	return out, rows.Err()
}

func escapeIdent(s string) string { return strings.ReplaceAll(s, `"`, `""`) }

// captureServer is an HTTP server on loopback that an http sink of a case
// sends its batches to: it keeps the bodies' events in order and answers
// 200.
type captureServer struct {
	url      string
	envelope bool
	srv      *http.Server
	done     chan struct{}

	mu   sync.Mutex
	got  []got
	errs []error
}

func newCaptureServer(envelope bool) (*captureServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &captureServer{url: "http://" + ln.Addr().String(), envelope: envelope, done: make(chan struct{})}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

func (c *captureServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var items []json.RawMessage
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := json.Unmarshal(body, &items); err != nil {
		// Answered 200 all the same: the case fails on it, not the sink.
		c.errs = append(c.errs, fmt.Errorf("request %d: the body is not a JSON array: %v", len(c.errs)+1, err))
		return
	}
	for _, it := range items {
		if !c.envelope {
			d := decodeDataValue(it, "application/json")
			c.got = append(c.got, got{ev: &flow.Event{Data: d}, data: parseData(d)})
			continue
		}
		ev, err := decodeEnvelope(it)
		if err != nil {
			c.errs = append(c.errs, err)
			continue
		}
		c.got = append(c.got, got{ev: ev, data: parseData(ev.Data)})
	}
}

func (c *captureServer) events() ([]got, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]got(nil), c.got...), errors.Join(c.errs...)
}

func (c *captureServer) attributes() bool { return c.envelope }
func (c *captureServer) describe() string { return "sent to " + c.url }

func (c *captureServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(ctx)
	<-c.done
}
