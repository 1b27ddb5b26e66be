package components

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		Summary: "POSTs each batch as a JSON array; retries network errors, 5xx and 429 with backoff, honouring Retry-After.",
		Fields: []flow.Field{
			{Name: "url", Type: flow.TypeString, Required: true, Example: "http://127.0.0.1:9000/ingest", Description: "Where to send the batches (http or https)."},
			{Name: "method", Type: flow.TypeString, Default: "POST", Enum: []string{"POST", "PUT", "PATCH"}, Description: "The HTTP method."},
			{Name: "headers", Type: flow.TypeMap, Items: &flow.Field{Type: flow.TypeString}, Description: "Extra request headers, e.g. Authorization."},
			ioFormatField,
			{Name: "timeout", Type: flow.TypeDuration, Default: "10s", Description: "Limit for one attempt (connect, send, answer)."},
			{Name: "max_attempts", Type: flow.TypeInt, Default: 5, Description: "Attempts per batch before it fails (1 = no retry)."},
			{Name: "backoff", Type: flow.TypeDuration, Default: "100ms", Description: "Wait before the first retry; it doubles each retry up to max_backoff. A Retry-After header from the server takes precedence."},
			{Name: "max_backoff", Type: flow.TypeDuration, Default: "10s", Description: "The longest wait between retries that the sink chooses itself."},
		},
		Examples: []string{
			"url: http://127.0.0.1:9000/ingest",
			"url: https://collector.example.com/v1/events\nformat: envelope\nheaders: {Authorization: \"Bearer ${TOKEN}\"}\nmax_attempts: 10",
		},
		Validate: validateWith(ioParseHTTPSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := ioParseHTTPSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			return s, nil
		},
	})
}

// httpSink sends batches to an HTTP endpoint.
type httpSink struct {
	name        string
	url         string
	method      string
	headers     map[string]string
	format      ioFormat
	timeout     time.Duration
	maxAttempts int
	backoff     ioBackoff
	client      *http.Client
	log         *slog.Logger
	// sleep waits between attempts; tests swap it to record the waits.
	sleep func(ctx context.Context, d time.Duration) error
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
		sleep:  ioSleep,
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
	s.maxAttempts, err = cfgInt(cfg, "max_attempts", 5)
	if err == nil && s.maxAttempts < 1 {
		err = ioFieldErr("max_attempts", "must be at least 1", "1 means no retry")
	}
	add(err)
	s.backoff.base, err = ioCfgDuration(cfg, "backoff", 100*time.Millisecond)
	if err == nil && s.backoff.base < 0 {
		err = ioFieldErr("backoff", "must not be negative", `use e.g. "100ms"`)
	}
	add(err)
	s.backoff.max, err = ioCfgDuration(cfg, "max_backoff", 10*time.Second)
	add(err)
	return s, errors.Join(errs...)
}

func ioSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// Write sends the batch, retrying on network errors, 5xx and 429 up to
// max_attempts. A 4xx other than 429 fails the batch at once: the request
// itself is wrong and sending it again will not help.
func (s *httpSink) Write(ctx context.Context, batch []*flow.Event) error {
	if len(batch) == 0 {
		return nil
	}
	body := s.body(batch)
	var last error
	for attempt := 1; ; attempt++ {
		err := s.send(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		var se *ioHTTPStatusError
		isStatus := errors.As(err, &se)
		if ctx.Err() != nil {
			return fmt.Errorf("sink %q: post to %s: %w", s.name, s.url, ctx.Err())
		}
		if isStatus && !se.retryable() {
			// Permanent: the engine's on_error retry skips it too.
			return fmt.Errorf("sink %q: %s %s refused the batch: %w: %w", s.name, s.method, s.url, flow.ErrPermanent, err)
		}
		if attempt >= s.maxAttempts {
			break
		}
		wait := s.backoff.delay(attempt)
		if isStatus && se.hasRA {
			wait = se.after
		}
		s.log.Warn("http sink retrying", "url", s.url, "attempt", attempt, "wait", wait, "error", err)
		if err := s.sleep(ctx, wait); err != nil {
			return fmt.Errorf("sink %q: post to %s: %w (last error: %v)", s.name, s.url, err, last)
		}
	}
	return fmt.Errorf("sink %q: %s %s failed after %d attempts: %w", s.name, s.method, s.url, s.maxAttempts, last)
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
