package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestStartPublishFetch: the server takes a JetStream publish and hands
// the message back to a consumer.
func TestStartPublishFetch(t *testing.T) {
	s := Start(t)
	s.CreateStream(t, "T", "t.>")
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, "t.a", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != "T" || ack.Sequence != 1 {
		t.Fatalf("pub ack %+v, want stream T sequence 1", ack)
	}
	c, err := js.OrderedConsumer(ctx, "T", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data()) != `{"n":1}` || m.Subject() != "t.a" {
		t.Fatalf("got %s on %s", m.Data(), m.Subject())
	}
}
