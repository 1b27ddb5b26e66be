package components

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "http",
		Summary: "POSTs each batch as a JSON array, one request per attempt; the sink's on_error retries it (network errors, 5xx, 429), honouring Retry-After.",
		Fields: []flow.Field{
			{Name: "url", Type: flow.TypeString, Required: true, Example: "http://127.0.0.1:9000/ingest", Description: "Where to send the batches (http or https)."},
			{Name: "method", Type: flow.TypeString, Default: "POST", Enum: []string{"POST", "PUT", "PATCH"}, Description: "The HTTP method."},
			{Name: "headers", Type: flow.TypeMap, Items: &flow.Field{Type: flow.TypeString}, Description: "Extra request headers, e.g. Authorization."},
			ioFormatField,
			{Name: "timeout", Type: flow.TypeDuration, Default: "10s", Description: "Limit for one attempt (connect, send, answer)."},
		},
		Moved: map[string]string{
			"max_attempts": httpSinkMoved,
			"backoff":      httpSinkMoved,
			"max_backoff":  httpSinkMoved,
		},
		Examples: []string{
			"url: http://127.0.0.1:9000/ingest",
			"url: https://collector.example.com/v1/events\nformat: envelope\nheaders: {Authorization: \"Bearer ${TOKEN}\"}",
		},
		Validate: validateWith(ioParseHTTPSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseHTTPSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			return s, nil
		},
	})
}

// httpSinkMoved is the hint for the retry fields the http sink had before
// the engine's on_error became the only retry layer.
const httpSinkMoved = "the http sink makes one request per attempt and the engine retries it: set this in the sink's `on_error` (e.g. `on_error: {max_attempts: 10, backoff: 100ms, max_backoff: 10s}`)"

// httpSink sends batches to an HTTP endpoint. It has no retry loop of its
// own: each Write is one request, and the engine's on_error decides whether
// and when to write again, so the two never multiply.
type httpSink struct {
	url     string
	method  string
	headers map[string]string
	format  ioFormat
	timeout time.Duration
	client  *http.Client
}

func ioParseHTTPSink(cfg flow.Config) (*httpSink, error) {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	s := &httpSink{
		url:    ioCfgString(cfg, "url", ""),
		method: strings.ToUpper(ioCfgString(cfg, "method", http.MethodPost)),
	}
	if s.url == "" {
		add(ioFieldErr("url", "is required", "give the endpoint, e.g. url: http://127.0.0.1:9000/ingest"))
	} else if u, err := url.Parse(s.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(ioFieldErr("url", fmt.Sprintf("%q is not an http(s) URL", s.url), "write it like http://host:port/path"))
	}
	var err error
	s.headers, err = ioCfgStringMap(cfg, "headers")
	add(err)
	s.format, err = ioParseFormat(cfg)
	add(err)
	s.timeout, err = ioCfgDuration(cfg, "timeout", 10*time.Second)
	if err == nil && s.timeout <= 0 {
		err = ioFieldErr("timeout", "must be positive", `use e.g. "10s"`)
	}
	add(err)
	return s, errors.Join(errs...)
}

// body encodes the batch as one JSON array.
func (s *httpSink) body(batch []*flow.Event) []byte {
	b := make([]byte, 0, 64*len(batch)+2)
	b = append(b, '[')
	for i, e := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		if s.format == ioFormatEnvelope {
			b = ioAppendEnvelope(b, e)
		} else {
			b = ioAppendJSONValue(b, e)
		}
	}
	return append(b, ']')
}

// ioHTTPStatusError is an answer the sink did not accept.
type ioHTTPStatusError struct {
	status int
	body   string
	after  time.Duration // from Retry-After
	hasRA  bool
}

func (e *ioHTTPStatusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("status %d", e.status)
	}
	return fmt.Sprintf("status %d: %s", e.status, e.body)
}

func (e *ioHTTPStatusError) retryable() bool {
	return e.status == http.StatusTooManyRequests || e.status >= 500
}

// Write sends the batch in one request. A network error, a 5xx or a 429 is
// returned for the engine's on_error to retry, carrying the answer's
// Retry-After (flow.RetryAfterError) when it has one; any other 4xx is
// flow.ErrPermanent: the request itself is wrong and sending it again will
// not help.
func (s *httpSink) Write(ctx context.Context, batch []*flow.Event) error {
	if len(batch) == 0 {
		return nil
	}
	err := s.send(ctx, s.body(batch))
	if err == nil {
		return nil
	}
	// The engine names the sink; say what was sent where, once (a
	// *url.Error would repeat the method and the URL).
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", s.method, s.url, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var se *ioHTTPStatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s %s: %w", s.method, s.url, err)
	}
	if !se.retryable() {
		return fmt.Errorf("%s %s refused the batch: %w: %w", s.method, s.url, flow.ErrPermanent, err)
	}
	err = fmt.Errorf("%s %s: %w", s.method, s.url, err)
	if se.hasRA {
		return &flow.RetryAfterError{Err: err, After: se.after}
	}
	return err
}

// send makes one attempt.
func (s *httpSink) send(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, s.method, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if s.format == ioFormatEnvelope {
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the answer: for the error message, and so
	// the connection can be reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &ioHTTPStatusError{status: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	se.after, se.hasRA = ioParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return se
}

// Close drops idle connections.
func (s *httpSink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

var (
	_ flow.Sink   = (*httpSink)(nil)
	_ flow.Closer = (*httpSink)(nil)
)
