package components

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/flow"
)

// This file holds what the nats source and sink share: the connection
// fields, connecting with a clear error, and the CloudEvents NATS binding
// (binary mode: the attributes travel as ce-* headers).
//
// nats.go is imported here, but nothing of it runs before a pipeline opens
// a nats component: its package initialisation only sets variables (see
// the GODEBUG=inittrace note in docs/components.md), so the built-ins that
// do not use NATS pay nothing at start-up.

const natsDefaultURL = "nats://127.0.0.1:4222"

// natsConnFields are the connection fields of both nats components.
var natsConnFields = []flow.Field{
	{Name: "url", Type: flow.TypeString, Default: natsDefaultURL,
		Description: "The server, or a comma-separated list of a cluster's servers: nats://host:4222, tls://host:4222; user:password@ or a token@ in the URL authenticate. Write ${NATS_URL} to keep secrets out of the file."},
	{Name: "credentials", Type: flow.TypeString,
		Description: "A NATS .creds file (JWT and nkey seed) to authenticate with; relative paths are resolved against the pipeline file's directory."},
	{Name: "connect_timeout", Type: flow.TypeDuration, Default: "10s",
		Description: "How long opening the connection may take before the run stops with an error."},
}

// natsConn is a parsed connection config.
type natsConn struct {
	url         string
	credentials string
	timeout     time.Duration
}

func natsParseConn(cfg flow.Config) (natsConn, []error) {
	var errs []error
	c := natsConn{url: ioCfgString(cfg, "url", natsDefaultURL), credentials: ioCfgString(cfg, "credentials", "")}
	for _, u := range strings.Split(c.url, ",") {
		u = strings.TrimSpace(u)
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || !natsSchemes[p.Scheme] {
			errs = append(errs, ioFieldErr("url", fmt.Sprintf("%q is not a NATS server URL", u), "write it like nats://127.0.0.1:4222 (schemes nats, tls, ws, wss)"))
		}
	}
	to, err := ioCfgDuration(cfg, "connect_timeout", 10*time.Second)
	if err == nil && to <= 0 {
		err = ioFieldErr("connect_timeout", "must be positive", `use e.g. "10s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	c.timeout = to
	return c, errs
}

var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// connect opens the connection. Once open, nats.go reconnects by itself
// (forever: a pipeline outlives a server restart); the first connection
// must succeed, so a wrong URL stops the run at once and says where it
// looked.
func (c natsConn) connect(ctx context.Context, role, name, clientName, dir string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(clientName),
		nats.Timeout(c.timeout),
		nats.MaxReconnects(-1),
	}
	if c.credentials != "" {
		opts = append(opts, nats.UserCredentials(ioResolvePath(dir, c.credentials)))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(c.url, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%s %q: cannot connect to NATS at %s: %v — is nats-server running and listening there? Check config.url", role, name, natsRedact(c.url), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("%s %q: connect to NATS at %s: %w", role, name, natsRedact(c.url), ctx.Err())
	}
}

// natsRedact hides passwords and tokens in a URL for messages.
func natsRedact(u string) string {
	parts := strings.Split(u, ",")
	for i, s := range parts {
		if p, err := url.Parse(strings.TrimSpace(s)); err == nil && p.User != nil {
			p.User = url.User("***")
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ",")
}

// natsStreamHint is how to create a missing stream, for error messages.
func natsStreamHint(stream string, subjects []string) string {
	subj := strings.Join(subjects, ",")
	if subj == "" {
		subj = "SUBJECT"
	}
	return fmt.Sprintf("create it (nats stream add %s --subjects %q) or set create_stream: true", stream, subj)
}

// natsEnsureStream checks that stream exists and, with create, creates it
// taking subjects (file storage).
func natsEnsureStream(ctx context.Context, js jetstream.JetStream, role, name, stream string, subjects []string, create bool) error {
	_, err := js.Stream(ctx, stream)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound) && create:
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: subjects, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("%s %q: create stream %s: %w", role, name, stream, err)
		}
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%s %q: JetStream stream %q does not exist — %s", role, name, stream, natsStreamHint(stream, subjects))
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s %q: JetStream is not enabled on the server: %v — start nats-server with -js (or jetstream {} in its config)", role, name, err)
	default:
		return fmt.Errorf("%s %q: look up stream %s: %w", role, name, stream, err)
	}
}

// The CloudEvents NATS binding's header names (binary content mode).
const (
	natsHdrPrefix      = "ce-"
	natsHdrSpecVersion = "ce-specversion"
	natsHdrID          = "ce-id"
	natsHdrType        = "ce-type"
	natsHdrSource      = "ce-source"
	natsHdrSubject     = "ce-subject"
	natsHdrTime        = "ce-time"
	natsHdrContentType = "content-type"
)

// natsStandardHeaders are the ce-* headers that are attributes, not
// extensions (metadata).
var natsStandardHeaders = map[string]bool{
	natsHdrSpecVersion: true, natsHdrID: true, natsHdrType: true,
	natsHdrSource: true, natsHdrSubject: true, natsHdrTime: true,
}
