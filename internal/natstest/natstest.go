package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long Start waits for the server to accept
// connections; generous, for a busy two-core machine.
const readyTimeout = 30 * time.Second

// Server is a running in-process NATS server with JetStream.
type Server struct {
	// URL is the nats:// address clients connect to.
	URL string
	// StoreDir holds the JetStream store.
	StoreDir string

	srv *server.Server
}

// Start starts a server for t on 127.0.0.1 at a random port, with
// JetStream storing under a directory of t.TempDir(); it is shut down
// when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		// No HTTP monitoring, no cluster: only the client port.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		t.Fatalf("natstest: the server did not accept connections within %s", readyTimeout)
	}
	s := &Server{URL: srv.ClientURL(), StoreDir: dir, srv: srv}
	t.Cleanup(s.Shutdown)
	return s
}

// Shutdown stops the server and waits until it has. It may be called more
// than once.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Connect returns a client connection and its JetStream context, closed
// when t ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL, nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", s.URL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// CreateStream creates a file-backed stream name taking subjects.
func (s *Server) CreateStream(t testing.TB, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("natstest: create stream %s: %v", name, err)
	}
	return st
}
