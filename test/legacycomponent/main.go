// Command legacycomponent is a component of the earlier flowctl's older
// ecosystem, written directly against the protobuf package flowctl
// (github.com/flowctl/flowctl/pkg/wire/flowctlpb): like the Stellar live
// source or the token transfer processor, it registers and heartbeats only
// through flowctl.ControlPlane and would move its data itself. It lives in
// its own module so that it sees only what an outside author sees.
//
// It reads ENABLE_FLOWCTL, FLOWCTL_ENDPOINT, FLOWCTL_COMPONENT_ID and
// FLOWCTL_HEARTBEAT_INTERVAL, and for the tests:
//
//   - ROLE: source, processor or sink [processor];
//   - STARTS_FILE: a line "start ID PID ENDPOINT" is appended when it
//     registered, "stop ID PID" when it ends on SIGTERM/SIGINT;
//   - SERVICE_ID: register under this service_id and no component_id, as
//     the earlier SDK's basic_processor does;
//   - PAUSE_FILE: once this file exists the component removes it and stops
//     heartbeating (it keeps running), as a hung component would.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
)

func main() {
	log.SetFlags(0)
	if os.Getenv("ENABLE_FLOWCTL") != "true" {
		log.Fatal("ENABLE_FLOWCTL is not true: nothing to register with")
	}
	endpoint, id := os.Getenv("FLOWCTL_ENDPOINT"), os.Getenv("FLOWCTL_COMPONENT_ID")
	// The order flowctl started the components in: this line is written
	// before registering, so the next component (started once this one
	// registered) cannot write its own first.
	record(fmt.Sprintf("spawn %s %d", id, os.Getpid()))
	interval := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("FLOWCTL_HEARTBEAT_INTERVAL")); err == nil && d > 0 {
		interval = d
	}
	types := map[string]flowctlpb.ServiceType{
		"source": flowctlpb.ServiceType_SERVICE_TYPE_SOURCE,
		"":       flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR, "processor": flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR,
		"sink": flowctlpb.ServiceType_SERVICE_TYPE_SINK,
	}
	st, ok := types[os.Getenv("ROLE")]
	if !ok {
		log.Fatalf("ROLE %q: want source, processor or sink", os.Getenv("ROLE"))
	}

	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	cp := flowctlpb.NewControlPlaneClient(conn)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	info := &flowctlpb.ServiceInfo{
		ServiceId: "legacy-" + strings.ToLower(st.String()), ComponentId: id, ServiceType: st,
		OutputEventTypes: []string{"legacy.event"}, HealthEndpoint: "http://127.0.0.1:0/health",
	}
	if sid := os.Getenv("SERVICE_ID"); sid != "" {
		// As the earlier SDK's basic_processor does: register as
		// $SERVICE_ID, without a component_id.
		info.ServiceId, info.ComponentId = sid, ""
	}
	var ack *flowctlpb.RegistrationAck
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err = cp.Register(rctx, info)
		cancel()
		if err == nil {
			break
		}
		if attempt == 50 || ctx.Err() != nil {
			log.Fatalf("register: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	record(fmt.Sprintf("start %s %d %s", ack.GetServiceId(), os.Getpid(), endpoint))
	log.Printf("registered as %s through flowctl.ControlPlane", ack.GetServiceId())

	pause := os.Getenv("PAUSE_FILE")
	beat := time.NewTicker(interval)
	defer beat.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	paused := false
	var n float64
	for {
		select {
		case <-ctx.Done():
			record(fmt.Sprintf("stop %s %d", ack.GetServiceId(), os.Getpid()))
			return
		case <-check.C:
			if pause != "" && !paused {
				if _, err := os.Stat(pause); err == nil {
					_ = os.Remove(pause)
					paused = true
					log.Printf("pause file seen: no more heartbeats")
				}
			}
		case <-beat.C:
			if paused {
				continue
			}
			n++
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cp.Heartbeat(hctx, &flowctlpb.ServiceHeartbeat{
				ServiceId: ack.GetServiceId(), Timestamp: timestamppb.Now(), Metrics: map[string]float64{"beats": n},
			})
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Printf("heartbeat: %v", err)
			}
		}
	}
}

// record appends line to STARTS_FILE, if set.
func record(line string) {
	path := os.Getenv("STARTS_FILE")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		log.Fatal(err)
	}
}
