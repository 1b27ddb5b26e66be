package components

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioStartHTTPSource opens and runs an http source on a free loopback port
// and returns its base URL; the source stops when the test ends.
func ioStartHTTPSource(t *testing.T, cfg flow.Config, em flow.Emitter) (*httpSource, string) {
	t.Helper()
	if cfg["address"] == nil {
		cfg["address"] = "127.0.0.1:0"
	}
	src := ioNewSource(t, "http", "web", "", cfg).(*httpSource)
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, em) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		src.Close(context.Background())
	})
	return src, "http://" + src.Addr()
}

type ioHTTPAnswer struct {
	status int
	header http.Header
	body   ioHTTPReply
}

func ioPost(t *testing.T, url string, header map[string]string, body string) ioHTTPAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := ioHTTPAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return a
}

func TestHTTPSourceContentTypes(t *testing.T) {
	type ev struct{ id, typ, source, subject, ctype, data, time string }
	tests := []struct {
		name   string
		header map[string]string
		body   string
		status int
		want   []ev
		meta   map[string]string // of the first event
		cfg    flow.Config       // besides the address
		says   string            // in the error answer
	}{
		{
			name:   "json object",
			header: map[string]string{"Content-Type": "application/json"},
			body:   `{"a":1}`, status: 202,
			want: []ev{{id: "web:1", typ: "web", source: "web", ctype: "application/json", data: `{"a":1}`}},
		},
		{
			name:   "json array is a batch",
			header: map[string]string{"Content-Type": "application/json; charset=utf-8"},
			body:   ` [{"a":1}, {"a":2}] `, status: 202,
			want: []ev{{id: "web:1", typ: "web", data: `{"a":1}`}, {id: "web:2", typ: "web", data: `{"a":2}`}},
		},
		{
			name: "no content type means json",
			body: `{"a":1}`, status: 202,
			want: []ev{{id: "web:1", data: `{"a":1}`}},
		},
		{
			name:   "ndjson",
			header: map[string]string{"Content-Type": "application/x-ndjson"},
			body:   "{\"a\":1}\n\n{\"a\":2}\r\n", status: 202,
			want: []ev{{data: `{"a":1}`}, {data: `{"a":2}`}},
		},
		{
			name:   "jsonl",
			header: map[string]string{"Content-Type": "application/jsonl"},
			body:   "{\"a\":1}", status: 202,
			want: []ev{{data: `{"a":1}`}},
		},
		{
			name: "cloudevents binary mode",
			header: map[string]string{
				"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "evt-7", "ce-type": "order.created",
				"ce-source": "/shop", "ce-subject": "order/7", "ce-time": "2026-01-02T03:04:05Z", "ce-traceparent": "00-abc",
			},
			body: `{"total":7}`, status: 202,
			want: []ev{{id: "evt-7", typ: "order.created", source: "/shop", subject: "order/7", ctype: "application/json", data: `{"total":7}`, time: "2026-01-02T03:04:05Z"}},
			meta: map[string]string{"traceparent": "00-abc"},
		},
		{
			name:   "cloudevents binary mode with text data",
			header: map[string]string{"Content-Type": "text/plain", "ce-id": "t1", "ce-type": "note"},
			body:   "hello", status: 202,
			want: []ev{{id: "t1", typ: "note", source: "web", ctype: "text/plain", data: "hello"}},
		},
		{
			name:   "cloudevents structured mode",
			header: map[string]string{"Content-Type": "application/cloudevents+json"},
			body:   `{"specversion":"1.0","id":"s1","type":"user.signup","source":"/auth","time":"2026-01-02T03:04:05.5Z","datacontenttype":"application/json","data":{"user":"ada"},"region":"eu","priority":3}`,
			status: 202,
			want:   []ev{{id: "s1", typ: "user.signup", source: "/auth", ctype: "application/json", data: `{"user":"ada"}`, time: "2026-01-02T03:04:05.5Z"}},
			meta:   map[string]string{"region": "eu", "priority": "3"},
		},
		{
			name:   "cloudevents structured mode, base64 and text data",
			header: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			body:   `[{"specversion":"1.0","id":"b1","type":"blob","source":"s","datacontenttype":"application/octet-stream","data_base64":"aGk="},{"specversion":"1.0","id":"b2","type":"txt","source":"s","datacontenttype":"text/plain","data":"plain text"}]`,
			status: 202,
			want: []ev{
				{id: "b1", typ: "blob", ctype: "application/octet-stream", data: "hi"},
				{id: "b2", typ: "txt", ctype: "text/plain", data: "plain text"},
			},
		},
		{name: "malformed json", header: map[string]string{"Content-Type": "application/json"}, body: `{"a":`, status: 400},
		{name: "malformed array", header: map[string]string{"Content-Type": "application/json"}, body: `[{"a":1},`, status: 400},
		{name: "empty body", header: map[string]string{"Content-Type": "application/json"}, body: ``, status: 400},
		{name: "malformed ndjson line", header: map[string]string{"Content-Type": "application/x-ndjson"}, body: "{}\n{oops}\n", status: 400},
		{name: "malformed cloudevent", header: map[string]string{"Content-Type": "application/cloudevents+json"}, body: `[1]`, status: 400},
		{name: "bad ce-time", header: map[string]string{"ce-id": "x", "ce-time": "yesterday"}, body: `{}`, status: 400},
		{name: "unsupported type", header: map[string]string{"Content-Type": "text/csv"}, body: "a,b", status: 415},
		{name: "strict: number beyond float64", body: `{"amount":1e999}`, status: 400,
			says: "body is not valid JSON: invalid JSON at offset 10: number 1e999 is beyond the range of float64"},
		{name: "strict: inexact integer in an array", body: `[{"a":1},{"a":123456789012345678901234567890}]`, status: 400,
			says: "integer 123456789012345678901234567890 does not fit in int64"},
		{name: "strict: invalid UTF-8 in an ndjson line", header: map[string]string{"Content-Type": "application/x-ndjson"},
			body: "{}\n{\"s\":\"\xff\"}\n", status: 400, says: "line 2 is not valid JSON: invalid JSON at offset 6: invalid UTF-8 byte 0xff"},
		{name: "lenient: 1e999 accepted", cfg: flow.Config{"json": "lenient"}, body: `{"amount":1e999}`, status: 202,
			want: []ev{{data: `{"amount":1e999}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em := newIOTestEmitter()
			cfg := flow.Config{}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			_, url := ioStartHTTPSource(t, cfg, em)
			a := ioPost(t, url+"/", tt.header, tt.body)
			if a.status != tt.status {
				t.Fatalf("status %d (%+v), want %d", a.status, a.body, tt.status)
			}
			if tt.status >= 400 {
				if a.body.Error == "" || !strings.Contains(a.body.Error, tt.says) {
					t.Errorf("error answer %q, want it to say %q", a.body.Error, tt.says)
				}
				if n := len(em.events()); n != 0 {
					t.Errorf("%d events emitted for a refused request", n)
				}
				return
			}
			if a.body.Accepted != len(tt.want) {
				t.Errorf("accepted = %d, want %d", a.body.Accepted, len(tt.want))
			}
			evs := em.events()
			if len(evs) != len(tt.want) {
				t.Fatalf("events: %s", ioDescribe(evs))
			}
			for i, w := range tt.want {
				e := evs[i]
				check := func(what, got, want string) {
					if want != "" && got != want {
						t.Errorf("event %d %s = %q, want %q", i, what, got, want)
					}
				}
				check("id", e.ID, w.id)
				check("type", e.Type, w.typ)
				check("source", e.Source, w.source)
				check("subject", e.Subject, w.subject)
				check("datacontenttype", e.DataContentType, w.ctype)
				check("data", string(e.Data), w.data)
				if w.time != "" {
					check("time", e.Time.Format(time.RFC3339Nano), w.time)
				} else if e.Time.IsZero() {
					t.Errorf("event %d has no receipt time", i)
				}
			}
			for k, v := range tt.meta {
				if got := evs[0].Metadata[k]; got != v {
					t.Errorf("metadata[%s] = %q, want %q (all: %v)", k, got, v, evs[0].Metadata)
				}
			}
		})
	}
}

// With sync: true the answer waits for the acknowledgement of every batch.
func TestHTTPSourceSyncWaitsForAck(t *testing.T) {
	em := newIOTestEmitter()
	_, url := ioStartHTTPSource(t, flow.Config{"sync": true}, em)
	// 300 events: two batches, both must be acknowledged.
	body := "[" + strings.TrimSuffix(strings.Repeat(`{"x":1},`, 300), ",") + "]"
	answered := make(chan ioHTTPAnswer, 1)
	go func() { answered <- ioPost(t, url, map[string]string{"Content-Type": "application/json"}, body) }()
	em.waitEvents(t, 300)
	select {
	case a := <-answered:
		t.Fatalf("answered %d before the acknowledgement", a.status)
	case <-time.After(100 * time.Millisecond):
	}
	if n := em.ackAll(nil); n != 2 {
		t.Fatalf("%d batches waiting for ack, want 2", n)
	}
	a := <-answered
	if a.status != http.StatusOK || a.body.Accepted != 300 {
		t.Errorf("answer %d %+v, want 200 with 300 accepted", a.status, a.body)
	}

	// A batch that fails downstream is a 500.
	go func() { answered <- ioPost(t, url, nil, `{"x":2}`) }()
	em.waitEvents(t, 301)
	for em.ackAll(context.Canceled) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if a := <-answered; a.status != http.StatusInternalServerError || !strings.Contains(a.body.Error, "not delivered") {
		t.Errorf("answer %d %+v, want 500", a.status, a.body)
	}
}

// When the pipeline cannot take a batch within enqueue_timeout the answer
// is 503 with Retry-After; with every in-flight slot taken, 429.
func TestHTTPSourceBackpressure(t *testing.T) {
	em := newIOTestEmitter()
	em.gate = make(chan struct{}) // Emit blocks until released
	_, url := ioStartHTTPSource(t, flow.Config{"enqueue_timeout": "100ms", "max_in_flight": 2}, em)

	start := time.Now()
	a := ioPost(t, url, nil, `{"x":1}`)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
		t.Fatalf("answer %d Retry-After %q, want 503 with Retry-After 1", a.status, a.header.Get("Retry-After"))
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 5*time.Second {
		t.Errorf("503 after %v, want about enqueue_timeout", waited)
	}

	// Two requests hold the two slots (blocked in Emit); the third is
	// refused at once.
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- ioPost(t, url, nil, `{"x":2}`).status
		}()
	}
	time.Sleep(30 * time.Millisecond)
	a = ioPost(t, url, nil, `{"x":3}`)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Errorf("third request: %d Retry-After %q, want 429 with Retry-After", a.status, a.header.Get("Retry-After"))
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Errorf("blocked request got %d, want 503", s)
		}
	}
	if n := len(em.events()); n != 0 {
		t.Errorf("%d events emitted while blocked", n)
	}
}

func TestHTTPSourceLimitsAndMethods(t *testing.T) {
	em := newIOTestEmitter()
	_, url := ioStartHTTPSource(t, flow.Config{"max_body": 16, "path": "/ingest"}, em)
	if a := ioPost(t, url+"/ingest", nil, `{"long":"0123456789abcdef"}`); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", a.status)
	}
	resp, err := http.Get(url + "/ingest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Post(url+"/other", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %d, want 404", resp.StatusCode)
	}
	if a := ioPost(t, url+"/ingest", nil, `{"ok":1}`); a.status != http.StatusAccepted {
		t.Errorf("small body: %d", a.status)
	}
}

// A port in use is an Open error that names the address.
func TestHTTPSourcePortConflict(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src := ioNewSource(t, "http", "web", "", flow.Config{"address": ln.Addr().String()}).(*httpSource)
	err = src.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "config.address") {
		t.Errorf("open error = %v", err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Errorf("close after failed open: %v", err)
	}
}

func TestHTTPSourceValidate(t *testing.T) {
	spec, _ := NewRegistry().Lookup(flow.RoleSource, "http")
	for cfg, want := range map[string]flow.Config{
		"address":         {"address": "8080"},
		"path":            {"path": "events"},
		"max_in_flight":   {"max_in_flight": 0},
		"enqueue_timeout": {"enqueue_timeout": "-1s"},
		"max_body":        {"max_body": -1},
	} {
		err := spec.Validate(want)
		if err == nil || !strings.HasPrefix(err.Error(), cfg+":") {
			t.Errorf("%v: error %v, want one about %s", want, err, cfg)
		}
	}
	if err := spec.Validate(flow.Config{}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
