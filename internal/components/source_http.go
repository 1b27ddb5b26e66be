package components

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSource,
		Name:     "http",
		Summary:  "Listens for events over HTTP: JSON, JSON lines and CloudEvents (binary and structured mode); answers 202 once enqueued or 200 after the acknowledgement with sync.",
		Delivery: "Cannot be replayed: with sync: true a request is answered only once its events were written, so a client that retries unanswered requests gets at-least-once; with the default 202 the events of answered requests still in flight when flowctl is killed are lost.",
		Fields: []flow.Field{
			{Name: "address", Type: flow.TypeString, Default: "127.0.0.1:8080", Description: "host:port to listen on. Use 0.0.0.0:PORT to accept connections from other machines."},
			{Name: "path", Type: flow.TypeString, Default: "/", Description: "The URL path that accepts POSTed events."},
			{Name: "sync", Type: flow.TypeBool, Default: false, Description: "Answer 200 only once every event of the request was written by the sinks (or filtered or dead-lettered); default: 202 as soon as the events are enqueued."},
			{Name: "max_body", Type: flow.TypeInt, Default: 10 << 20, Description: "Largest request body in bytes; larger bodies get 413."},
			{Name: "max_in_flight", Type: flow.TypeInt, Default: 64, Description: "Requests handled at once; more get 429 with Retry-After, so a stalled pipeline never makes the source buffer without bound."},
			{Name: "enqueue_timeout", Type: flow.TypeDuration, Default: "1s", Description: "How long a request may wait for room in the pipeline before it gets 503 with Retry-After."},
			{Name: "event_type", Type: flow.TypeString, Description: "The type of events that carry none (plain JSON, or CloudEvents without a type); defaults to the component's name."},
			{Name: "json", Type: flow.TypeString, Default: "strict", Enum: []string{"strict", "lenient"},
				Description: "strict: a JSON or JSON-lines body that is not valid JSON, or whose value would change when read — invalid UTF-8 or a lone \\u surrogate in a string, a number beyond float64 (1e999), an integer that fits neither int64 nor exactly float64 — gets 400 naming what and where, and nothing of it is enqueued; lenient: only the JSON grammar is checked, as before."},
		},
		Examples: []string{
			"address: 127.0.0.1:8080\npath: /events",
			"address: 0.0.0.0:9000\nsync: true\nmax_in_flight: 16",
		},
		Validate:    validateWith(ioParseHTTPSource),
		OutputTypes: sourceEventTypes,
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseHTTPSource(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.eventType = ioCfgString(bc.Config, "event_type", bc.Name)
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// httpSource is an HTTP endpoint that turns requests into events.
//
// Backpressure: at most max_in_flight requests are admitted at once (a
// non-blocking semaphore; the rest get 429), and an admitted request holds
// its body only while it waits up to enqueue_timeout for Emit (then 503).
// So memory is bounded by max_in_flight × max_body whatever the pipeline
// does.
type httpSource struct {
	name, eventType string
	address, path   string
	sync            bool
	strict          bool // json: strict (see the field)
	maxBody         int64
	maxInFlight     int
	enqueueTimeout  time.Duration
	log             *slog.Logger

	ln     net.Listener
	addr   string // the bound address, kept after Run takes ln over
	sem    chan struct{}
	seq    atomic.Uint64
	mu     sync.Mutex
	out    flow.Emitter
	runCtx context.Context
}

func ioParseHTTPSource(cfg flow.Config) (*httpSource, error) {
	var errs []error
	s := &httpSource{
		address: ioCfgString(cfg, "address", "127.0.0.1:8080"),
		path:    ioCfgString(cfg, "path", "/"),
		sync:    ioCfgBool(cfg, "sync", false),
	}
	switch m := ioCfgString(cfg, "json", "strict"); m {
	case "strict":
		s.strict = true
	case "lenient":
	default:
		errs = append(errs, ioFieldErr("json", fmt.Sprintf("unknown mode %q", m), `use "strict" (bodies whose values would change are refused) or "lenient"`))
	}
	if _, _, err := net.SplitHostPort(s.address); err != nil {
		errs = append(errs, ioFieldErr("address", fmt.Sprintf("%q is not host:port", s.address), "write it like 127.0.0.1:8080"))
	}
	if !strings.HasPrefix(s.path, "/") {
		errs = append(errs, ioFieldErr("path", fmt.Sprintf("%q must start with /", s.path), "write it like /events"))
	}
	mb, err := cfgInt(cfg, "max_body", 10<<20)
	if err == nil && mb <= 0 {
		err = ioFieldErr("max_body", "must be positive", "use a size in bytes, e.g. 10485760 for 10 MiB")
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.maxBody = int64(mb)
	mif, err := cfgInt(cfg, "max_in_flight", 64)
	if err == nil && mif <= 0 {
		err = ioFieldErr("max_in_flight", "must be positive", "use e.g. 64")
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.maxInFlight = mif
	et, err := ioCfgDuration(cfg, "enqueue_timeout", time.Second)
	if err == nil && et <= 0 {
		err = ioFieldErr("enqueue_timeout", "must be positive", `use e.g. "1s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.enqueueTimeout = et
	return s, errors.Join(errs...)
}

// Open starts listening, so a port already in use is an open error that
// names the address, before any event flows.
func (s *httpSource) Open(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.address)
	if err != nil {
		return fmt.Errorf("source %q: listen on %s: %w — is another process using this port? change config.address", s.name, s.address, err)
	}
	s.ln = ln
	s.addr = ln.Addr().String()
	s.sem = make(chan struct{}, s.maxInFlight)
	return nil
}

// Addr is the address the source listens on once open (useful with port 0).
func (s *httpSource) Addr() string { return s.addr }

// ioHTTPShutdownGrace bounds how long a stopping http source waits for
// requests in progress (sync ones wait for their acknowledgements); it
// matches flowctl run's default --grace.
const ioHTTPShutdownGrace = 10 * time.Second

// Run serves requests until ctx is done, then stops accepting and waits
// (up to ioHTTPShutdownGrace) for the requests in progress.
func (s *httpSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.ln == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.out, s.runCtx = out, ctx
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc(s.path, s.serve)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		s.ln = nil
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("source %q: serve on %s: %w", s.name, s.address, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ioHTTPShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	s.ln = nil // Serve closed it
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("source %q: shut down: %w", s.name, err)
	}
	return nil
}

// Close closes the listener if Run never took it over.
func (s *httpSource) Close(context.Context) error {
	if s.ln != nil {
		err := s.ln.Close()
		s.ln = nil
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("source %q: close listener: %w", s.name, err)
		}
	}
	return nil
}

// ioHTTPError is a request the source refuses, with its status.
type ioHTTPError struct {
	status int
	msg    string
}

func (e *ioHTTPError) Error() string { return e.msg }

func ioBadRequest(format string, a ...any) error {
	return &ioHTTPError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func ioWriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type ioHTTPReply struct {
	Accepted int    `json:"accepted"`
	Error    string `json:"error,omitempty"`
}

func (s *httpSource) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		ioWriteJSON(w, http.StatusMethodNotAllowed, ioHTTPReply{Error: "use POST to send events"})
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		ioWriteJSON(w, http.StatusTooManyRequests, ioHTTPReply{Error: fmt.Sprintf("more than %d requests in flight; retry later", s.maxInFlight)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ioWriteJSON(w, http.StatusRequestEntityTooLarge, ioHTTPReply{Error: fmt.Sprintf("body larger than max_body (%d bytes)", s.maxBody)})
			return
		}
		ioWriteJSON(w, http.StatusBadRequest, ioHTTPReply{Error: "read body: " + err.Error()})
		return
	}
	events, err := s.decode(r, body, time.Now().UTC())
	if err != nil {
		var he *ioHTTPError
		if errors.As(err, &he) {
			ioWriteJSON(w, he.status, ioHTTPReply{Error: he.msg})
			return
		}
		ioWriteJSON(w, http.StatusBadRequest, ioHTTPReply{Error: err.Error()})
		return
	}
	if len(events) == 0 {
		ioWriteJSON(w, http.StatusOK, ioHTTPReply{})
		return
	}
	s.enqueue(w, r, events)
}

// enqueue emits the events (in batches of at most 256) and answers.
func (s *httpSource) enqueue(w http.ResponseWriter, r *http.Request, events []*flow.Event) {
	s.mu.Lock()
	out, runCtx := s.out, s.runCtx
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), s.enqueueTimeout)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()

	var (
		acks     chan error
		batches  int
		accepted int
	)
	if s.sync {
		acks = make(chan error, (len(events)+ioMaxBatch-1)/ioMaxBatch)
	}
	for len(events) > 0 {
		n := min(len(events), ioMaxBatch)
		var done func(error)
		if s.sync {
			done = func(err error) { acks <- err }
		}
		if err := out.Emit(ctx, events[:n:n], done); err != nil {
			retry := int(math.Ceil(s.enqueueTimeout.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(retry, 1)))
			msg := "the pipeline is busy; retry later"
			if runCtx.Err() != nil {
				msg = "the pipeline is shutting down"
			}
			if accepted > 0 {
				msg += fmt.Sprintf(" (the first %d events were accepted; a retry may deliver them twice)", accepted)
			}
			ioWriteJSON(w, http.StatusServiceUnavailable, ioHTTPReply{Accepted: accepted, Error: msg})
			return
		}
		batches++
		accepted += n
		events = events[n:]
	}
	if !s.sync {
		ioWriteJSON(w, http.StatusAccepted, ioHTTPReply{Accepted: accepted})
		return
	}
	for range batches {
		select {
		case err := <-acks:
			if err != nil {
				ioWriteJSON(w, http.StatusInternalServerError, ioHTTPReply{Accepted: accepted, Error: "events were accepted but not delivered: " + err.Error()})
				return
			}
		case <-r.Context().Done():
			return // the client left; nobody reads the answer
		}
	}
	ioWriteJSON(w, http.StatusOK, ioHTTPReply{Accepted: accepted})
}

// decode turns a request into events according to its content type.
func (s *httpSource) decode(r *http.Request, body []byte, now time.Time) ([]*flow.Event, error) {
	ct := r.Header.Get("Content-Type")
	mt := "application/json"
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, ioBadRequest("bad Content-Type %q: %v", ct, err)
		}
	}
	switch {
	case mt == "application/cloudevents+json":
		return s.decodeStructured(body, false, now)
	case mt == "application/cloudevents-batch+json":
		return s.decodeStructured(body, true, now)
	case r.Header.Get("Ce-Specversion") != "" || r.Header.Get("Ce-Id") != "" || r.Header.Get("Ce-Type") != "":
		e, err := s.decodeBinary(r.Header, ct, body, now)
		if err != nil {
			return nil, err
		}
		return []*flow.Event{e}, nil
	case mt == "application/json" || mt == "text/json":
		return s.decodeJSON(body, now)
	case mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/x-jsonlines" || mt == "application/jsonlines":
		return s.decodeJSONLines(body, now)
	default:
		return nil, &ioHTTPError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("unsupported Content-Type %q; send application/json, application/x-ndjson, application/cloudevents+json, application/cloudevents-batch+json or a CloudEvent in binary mode (ce-* headers)", mt)}
	}
}

// event makes an event of the source's default type from JSON data.
func (s *httpSource) event(data []byte, now time.Time) *flow.Event {
	return &flow.Event{
		ID:              s.name + ":" + strconv.FormatUint(s.seq.Add(1), 10),
		Source:          s.name,
		Type:            s.eventType,
		Time:            now,
		DataContentType: "application/json",
		Data:            data,
	}
}

// decodeJSON: one object is one event, an array is one event per element.
func (s *httpSource) decodeJSON(body []byte, now time.Time) ([]*flow.Event, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, ioBadRequest("empty body; send a JSON object or an array of them")
	}
	if s.strict {
		if err := flow.ValidateJSON(trimmed); err != nil {
			return nil, ioBadRequest("body is not valid JSON: %v", err)
		}
	}
	if trimmed[0] != '[' {
		if !s.strict && !json.Valid(trimmed) {
			return nil, ioBadRequest("body is not valid JSON: %v", ioJSONErr(trimmed))
		}
		return []*flow.Event{s.event(trimmed, now)}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(trimmed, &items); err != nil {
		return nil, ioBadRequest("body is not a valid JSON array: %v", err)
	}
	out := make([]*flow.Event, len(items))
	for i, it := range items {
		out[i] = s.event(it, now)
	}
	return out, nil
}

func ioJSONErr(b []byte) error {
	var v any
	return json.Unmarshal(b, &v)
}

// decodeJSONLines: one event per non-blank line; any malformed line
// refuses the whole request (nothing is enqueued), naming the line.
func (s *httpSource) decodeJSONLines(body []byte, now time.Time) ([]*flow.Event, error) {
	var out []*flow.Event
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if s.strict {
			if err := flow.ValidateJSON(line); err != nil {
				return nil, ioBadRequest("line %d is not valid JSON: %v", n, err)
			}
		} else if !json.Valid(line) {
			return nil, ioBadRequest("line %d is not valid JSON: %v", n, ioJSONErr(line))
		}
		out = append(out, s.event(line, now))
	}
	return out, nil
}

// decodeBinary reads a CloudEvent in binary mode: attributes in ce-*
// headers, data = the body as it is.
func (s *httpSource) decodeBinary(h http.Header, ct string, body []byte, now time.Time) (*flow.Event, error) {
	e := s.event(body, now)
	e.DataContentType = ct
	if v := h.Get("Ce-Id"); v != "" {
		e.ID = v
	}
	if v := h.Get("Ce-Type"); v != "" {
		e.Type = v
	}
	if v := h.Get("Ce-Source"); v != "" {
		e.Source = v
	}
	if v := h.Get("Ce-Subject"); v != "" {
		e.Subject = v
	}
	if v := h.Get("Ce-Time"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, ioBadRequest("ce-time %q is not an RFC 3339 time", v)
		}
		e.Time = t
	}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		name := lk[3:]
		switch name {
		case "id", "type", "source", "subject", "time", "specversion":
			continue
		}
		if e.Metadata == nil {
			e.Metadata = map[string]string{}
		}
		e.Metadata[name] = vs[0]
	}
	return e, nil
}

// decodeStructured reads CloudEvents in structured mode: one JSON object,
// or (batch) an array of them.
func (s *httpSource) decodeStructured(body []byte, batch bool, now time.Time) ([]*flow.Event, error) {
	var objs []map[string]json.RawMessage
	if batch {
		if err := json.Unmarshal(body, &objs); err != nil {
			return nil, ioBadRequest("body is not a JSON array of CloudEvents: %v", err)
		}
	} else {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(body, &o); err != nil {
			return nil, ioBadRequest("body is not a CloudEvent JSON object: %v", err)
		}
		objs = []map[string]json.RawMessage{o}
	}
	out := make([]*flow.Event, 0, len(objs))
	for i, o := range objs {
		e, err := s.structuredEvent(o, now)
		if err != nil {
			if batch {
				return nil, ioBadRequest("event %d: %v", i, err)
			}
			return nil, ioBadRequest("%v", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *httpSource) structuredEvent(o map[string]json.RawMessage, now time.Time) (*flow.Event, error) {
	e := s.event(nil, now)
	str := func(k string) (string, error) {
		raw, ok := o[k]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("attribute %q must be a string", k)
		}
		return v, nil
	}
	for _, k := range []string{"id", "type", "source", "subject", "datacontenttype"} {
		v, err := str(k)
		if err != nil {
			return nil, err
		}
		if v == "" {
			continue
		}
		switch k {
		case "id":
			e.ID = v
		case "type":
			e.Type = v
		case "source":
			e.Source = v
		case "subject":
			e.Subject = v
		case "datacontenttype":
			e.DataContentType = v
		}
	}
	if v, err := str("time"); err != nil {
		return nil, err
	} else if v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fmt.Errorf("time %q is not an RFC 3339 time", v)
		}
		e.Time = t
	}
	if raw, ok := o["data_base64"]; ok {
		var b64 string
		if err := json.Unmarshal(raw, &b64); err != nil {
			return nil, errors.New(`"data_base64" must be a string`)
		}
		d, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf(`"data_base64" is not base64: %v`, err)
		}
		e.Data = d
	} else if raw, ok := o["data"]; ok {
		// JSON data is kept as its bytes; a string under a non-JSON
		// content type is the payload itself (text/plain "hello").
		e.Data = raw
		if !ioIsJSONContent(e.DataContentType) && len(raw) > 0 && raw[0] == '"' {
			var sv string
			if err := json.Unmarshal(raw, &sv); err == nil {
				e.Data = []byte(sv)
			}
		}
	}
	for k, raw := range o {
		if ioCoreAttrs[k] {
			continue
		}
		var sv string
		if err := json.Unmarshal(raw, &sv); err != nil {
			sv = string(raw) // numbers and booleans keep their JSON text
		}
		if e.Metadata == nil {
			e.Metadata = map[string]string{}
		}
		e.Metadata[k] = sv
	}
	return e, nil
}

var (
	_ flow.Source = (*httpSource)(nil)
	_ flow.Opener = (*httpSource)(nil)
	_ flow.Closer = (*httpSource)(nil)
)
