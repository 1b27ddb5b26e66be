// Command v1component is a flowctl processor written directly against the
// flowctl.v1 wire contract (github.com/flowctl/flowctl/pkg/wire/flowctlv1),
// the way components of the earlier flowctl were: no flowctl SDK. It lives
// in its own module so that it sees only what an outside author sees.
//
// It reads the environment flowctl gives a component (ENABLE_FLOWCTL,
// FLOWCTL_ENDPOINT, FLOWCTL_COMPONENT_ID, FLOWCTL_HEARTBEAT_INTERVAL,
// PORT), serves flowctl.v1 ProcessorService on PORT, registers that
// address through flowctl.v1 ControlPlaneService and heartbeats.
//
// What it does to events: a JSON payload with "drop": true is filtered
// out; every other event gets "v1": true added to its payload and the
// type "v1.<type>"; metadata (the Stellar cursor too) is kept.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

type processor struct {
	flowctlv1.UnimplementedProcessorServiceServer
	id string
}

func (p *processor) GetInfo(context.Context, *emptypb.Empty) (*flowctlv1.ComponentInfo, error) {
	return p.info(""), nil
}

func (p *processor) HealthCheck(context.Context, *flowctlv1.HealthCheckRequest) (*flowctlv1.HealthCheckResponse, error) {
	return &flowctlv1.HealthCheckResponse{Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY}, nil
}

func (p *processor) info(endpoint string) *flowctlv1.ComponentInfo {
	return &flowctlv1.ComponentInfo{
		Id:          p.id,
		Name:        "v1component",
		Description: "marks events seen by a flowctl.v1 processor",
		Version:     "0.1.0",
		Type:        flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR,
		Endpoint:    endpoint,
	}
}

// Process handles events one by one as they arrive and ends the stream
// once flowctl closes its side.
func (p *processor) Process(stream flowctlv1.ProcessorService_ProcessServer) error {
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var data map[string]any
		if err := json.Unmarshal(ev.GetPayload(), &data); err != nil {
			data = map[string]any{"raw": string(ev.GetPayload())}
		}
		if data["drop"] == true {
			continue
		}
		data["v1"] = true
		payload, err := json.Marshal(data)
		if err != nil {
			return err
		}
		out := &flowctlv1.Event{
			Id:                ev.GetId(),
			Type:              "v1." + ev.GetType(),
			Payload:           payload,
			Metadata:          ev.GetMetadata(),
			Timestamp:         ev.GetTimestamp(),
			SourceComponentId: p.id,
			ContentType:       "application/json",
			StellarCursor:     ev.StellarCursor,
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

func main() {
	addr := os.Getenv("PORT")
	if addr == "" {
		addr = "127.0.0.1:50052"
	}
	id := os.Getenv("FLOWCTL_COMPONENT_ID")
	if id == "" {
		id = "v1component"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen on %s: %v", addr, err)
	}
	p := &processor{id: id}
	gs := grpc.NewServer()
	flowctlv1.RegisterProcessorServiceServer(gs, p)
	go gs.Serve(lis)
	log.Printf("serving flowctl.v1 ProcessorService on %s", lis.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if os.Getenv("ENABLE_FLOWCTL") == "true" {
		go controlPlane(ctx, p, lis.Addr().String())
	}
	<-ctx.Done()
	log.Print("stopping")
	// flowctl keeps a processor's Process stream open for the
	// component's whole life (it half-closes it only when it stops the
	// component), so GracefulStop alone would wait for flowctl: give the
	// streams a moment to end, then end them.
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(500 * time.Millisecond):
		gs.Stop()
	}
}

// controlPlane registers with flowctl and heartbeats until ctx ends; it
// exits the process when flowctl is gone for good.
func controlPlane(ctx context.Context, p *processor, endpoint string) {
	cc, err := grpc.NewClient(os.Getenv("FLOWCTL_ENDPOINT"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("control plane: %v", err)
	}
	defer cc.Close()
	cp := flowctlv1.NewControlPlaneServiceClient(cc)
	interval, err := time.ParseDuration(os.Getenv("FLOWCTL_HEARTBEAT_INTERVAL"))
	if err != nil || interval <= 0 {
		interval = 10 * time.Second
	}
	register := func() error {
		_, err := cp.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: p.id, Component: p.info(endpoint)})
		return err
	}
	if err := register(); err != nil {
		log.Fatalf("register with flowctl: %v", err)
	}
	log.Printf("registered as %s", p.id)
	failures := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			uctx, cancel := context.WithTimeout(context.Background(), time.Second)
			cp.UnregisterComponent(uctx, &flowctlv1.UnregisterRequest{ServiceId: p.id})
			cancel()
			return
		case <-t.C:
		}
		_, err := cp.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: p.id, Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY})
		if err != nil {
			err = register() // the control plane may have restarted
		}
		if err != nil {
			failures++
			if failures >= 3 {
				log.Fatalf("flowctl is gone: %v", err)
			}
			continue
		}
		failures = 0
	}
}
