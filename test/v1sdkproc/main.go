// Command v1sdkproc is a flowctl.v1 processor that behaves the way
// processors built with the earlier flowctl's Go SDK do, written directly
// against the flowctl.v1 wire contract
// (github.com/flowctl/flowctl/pkg/wire/flowctlv1). It lives in its own
// module so that it sees only what an outside author sees.
//
// What makes it hard to drive: every input is handled by its own
// goroutine, after a small random delay, so answers come out of order;
// an input whose JSON payload has "drop": true gets no answer at all
// (filtered: flowctl.v1 has no way to say so); and when flowctl closes
// its side of the Process stream the handler returns at once, without
// waiting for the goroutines still working — their answers are lost with
// the stream. Every answer keeps its input's id.
//
// Environment: what flowctl gives a component (ENABLE_FLOWCTL,
// FLOWCTL_ENDPOINT, FLOWCTL_COMPONENT_ID, FLOWCTL_HEARTBEAT_INTERVAL,
// PORT); V1SDK_MAX_DELAY, the longest random delay per input [2ms];
// V1SDK_PID_FILE, a file it writes its pid to once it is registered.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

type processor struct {
	flowctlv1.UnimplementedProcessorServiceServer
	id       string
	maxDelay time.Duration
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
		Name:        "v1sdkproc",
		Description: "answers each event from its own goroutine, out of order",
		Version:     "0.1.0",
		Type:        flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR,
		Endpoint:    endpoint,
	}
}

// Process hands every input to a goroutine and returns at end of input
// without waiting for them, as the earlier SDK did.
func (p *processor) Process(stream flowctlv1.ProcessorService_ProcessServer) error {
	var sendMu sync.Mutex // a gRPC stream's Send is not safe for concurrent use
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		go func() {
			if p.maxDelay > 0 {
				time.Sleep(rand.N(p.maxDelay))
			}
			out, ok := p.handle(ev)
			if !ok {
				return
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = stream.Send(out) // fails once the handler returned: the answer is lost
		}()
	}
}

// handle filters events with "drop": true and marks the others.
func (p *processor) handle(ev *flowctlv1.Event) (*flowctlv1.Event, bool) {
	var data map[string]any
	if err := json.Unmarshal(ev.GetPayload(), &data); err != nil {
		data = map[string]any{"raw": string(ev.GetPayload())}
	}
	if data["drop"] == true {
		return nil, false
	}
	data["sdk"] = true
	payload, err := json.Marshal(data)
	if err != nil {
		return nil, false
	}
	return &flowctlv1.Event{
		Id:                ev.GetId(),
		Type:              "sdk." + ev.GetType(),
		Payload:           payload,
		Metadata:          ev.GetMetadata(),
		Timestamp:         ev.GetTimestamp(),
		SourceComponentId: p.id,
		ContentType:       "application/json",
		StellarCursor:     ev.StellarCursor,
	}, true
}

func main() {
	addr := os.Getenv("PORT")
	if addr == "" {
		addr = "127.0.0.1:50053"
	}
	id := os.Getenv("FLOWCTL_COMPONENT_ID")
	if id == "" {
		id = "v1sdkproc"
	}
	maxDelay := 2 * time.Millisecond
	if v := os.Getenv("V1SDK_MAX_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("V1SDK_MAX_DELAY=%q: %v", v, err)
		}
		maxDelay = d
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen on %s: %v", addr, err)
	}
	p := &processor{id: id, maxDelay: maxDelay}
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
	gs.Stop() // the SDK did not drain either
}

// controlPlane registers with flowctl, writes the pid file, and
// heartbeats until ctx ends; it exits the process when flowctl is gone.
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
	if f := os.Getenv("V1SDK_PID_FILE"); f != "" {
		// Write then rename, so a reader never sees half a pid.
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			log.Fatalf("pid file: %v", err)
		}
		if err := os.Rename(tmp, f); err != nil {
			log.Fatalf("pid file: %v", err)
		}
	}
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
