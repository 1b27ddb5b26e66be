package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// dial connects to the endpoint the component registered.
func (r *runner) dial() (*grpc.ClientConn, string, error) {
	ep, ok := r.rt.ControlPlane.Endpoint(r.comp.Name)
	if !ok {
		return nil, "", fmt.Errorf("component %q is not registered", r.comp.Name)
	}
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, ep, fmt.Errorf("dial %s: %w", ep, err)
	}
	return cc, ep, nil
}

func wantStreamRole(r flow.Role) streamv1.Role {
	switch r {
	case flow.RoleSource:
		return streamv1.Role_ROLE_SOURCE
	case flow.RoleSink:
		return streamv1.Role_ROLE_SINK
	}
	return streamv1.Role_ROLE_PROCESSOR
}

// grpcInfo calls GetInfo on the service of the role.
func (r *runner) grpcInfo(ctx context.Context) (Outcome, string) {
	cc, ep, err := r.dial()
	if err != nil {
		return Fail, err.Error()
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var info *streamv1.ComponentInfo
	switch r.opts.Role {
	case flow.RoleSource:
		info, err = streamv1.NewSourceServiceClient(cc).GetInfo(ctx, &streamv1.InfoRequest{})
	case flow.RoleSink:
		info, err = streamv1.NewSinkServiceClient(cc).GetInfo(ctx, &streamv1.InfoRequest{})
	default:
		info, err = streamv1.NewProcessorServiceClient(cc).GetInfo(ctx, &streamv1.InfoRequest{})
	}
	if err != nil {
		return Fail, fmt.Sprintf("GetInfo on %s: %v", ep, err)
	}
	d := fmt.Sprintf("GetInfo: name %q version %q role %s protocol_version %d max_batch %d",
		info.GetName(), info.GetVersion(), roleWord(info.GetRole()), info.GetProtocolVersion(), info.GetMaxBatch())
	switch {
	case info.GetRole() != wantStreamRole(r.opts.Role):
		return Fail, d + fmt.Sprintf(": role should be %s", r.opts.Role)
	case info.GetName() == "":
		return Fail, d + ": name is empty"
	case info.GetProtocolVersion() != 1:
		return Fail, d + ": protocol_version should be 1"
	}
	return Pass, d
}

func roleWord(r streamv1.Role) string {
	switch r {
	case streamv1.Role_ROLE_SOURCE:
		return "source"
	case streamv1.Role_ROLE_PROCESSOR:
		return "processor"
	case streamv1.Role_ROLE_SINK:
		return "sink"
	}
	return "unspecified"
}

// grpcHealth polls Health until HEALTHY (STARTING is allowed meanwhile).
func (r *runner) grpcHealth(ctx context.Context) (Outcome, string) {
	cc, ep, err := r.dial()
	if err != nil {
		return Fail, err.Error()
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	call := func() (*streamv1.HealthResponse, error) {
		switch r.opts.Role {
		case flow.RoleSource:
			return streamv1.NewSourceServiceClient(cc).Health(ctx, &streamv1.HealthRequest{})
		case flow.RoleSink:
			return streamv1.NewSinkServiceClient(cc).Health(ctx, &streamv1.HealthRequest{})
		}
		return streamv1.NewProcessorServiceClient(cc).Health(ctx, &streamv1.HealthRequest{})
	}
	for {
		h, err := call()
		if err != nil {
			return Fail, fmt.Sprintf("Health on %s: %v", ep, err)
		}
		switch h.GetStatus() {
		case streamv1.HealthStatus_HEALTH_STATUS_HEALTHY:
			return Pass, fmt.Sprintf("Health: %s", h.GetStatus())
		case streamv1.HealthStatus_HEALTH_STATUS_STARTING:
		default:
			return Fail, fmt.Sprintf("Health: %s %q, want HEALTHY", h.GetStatus(), h.GetMessage())
		}
		select {
		case <-ctx.Done():
			return Fail, fmt.Sprintf("Health still STARTING after %v", r.opts.Timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *runner) v1Info(ctx context.Context) (Outcome, string) {
	cc, ep, err := r.dial()
	if err != nil {
		return Fail, err.Error()
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var info *flowctlv1.ComponentInfo
	want := flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR
	switch r.opts.Role {
	case flow.RoleSource:
		want = flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE
		info, err = flowctlv1.NewSourceServiceClient(cc).GetInfo(ctx, &emptypb.Empty{})
	case flow.RoleSink:
		want = flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER
		info, err = flowctlv1.NewConsumerServiceClient(cc).GetInfo(ctx, &emptypb.Empty{})
	default:
		info, err = flowctlv1.NewProcessorServiceClient(cc).GetInfo(ctx, &emptypb.Empty{})
	}
	if err != nil {
		return Fail, fmt.Sprintf("GetInfo on %s: %v", ep, err)
	}
	d := fmt.Sprintf("GetInfo: id %q name %q version %q type %s", info.GetId(), info.GetName(), info.GetVersion(), info.GetType())
	if info.GetType() != want && info.GetType() != flowctlv1.ComponentType_COMPONENT_TYPE_UNSPECIFIED {
		return Fail, d + fmt.Sprintf(": type should be %s", want)
	}
	return Pass, d
}

func (r *runner) v1Health(ctx context.Context) (Outcome, string) {
	cc, ep, err := r.dial()
	if err != nil {
		return Fail, err.Error()
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req := &flowctlv1.HealthCheckRequest{}
	var h *flowctlv1.HealthCheckResponse
	for {
		switch r.opts.Role {
		case flow.RoleSource:
			h, err = flowctlv1.NewSourceServiceClient(cc).HealthCheck(ctx, req)
		case flow.RoleSink:
			h, err = flowctlv1.NewConsumerServiceClient(cc).HealthCheck(ctx, req)
		default:
			h, err = flowctlv1.NewProcessorServiceClient(cc).HealthCheck(ctx, req)
		}
		if err != nil {
			return Fail, fmt.Sprintf("HealthCheck on %s: %v", ep, err)
		}
		switch h.GetStatus() {
		case flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY:
			return Pass, fmt.Sprintf("HealthCheck: %s", h.GetStatus())
		case flowctlv1.HealthStatus_HEALTH_STATUS_STARTING, flowctlv1.HealthStatus_HEALTH_STATUS_UNKNOWN:
		default:
			return Fail, fmt.Sprintf("HealthCheck: %s %q, want HEALTHY", h.GetStatus(), h.GetMessage())
		}
		select {
		case <-ctx.Done():
			return Fail, fmt.Sprintf("HealthCheck still %s after %v", h.GetStatus(), r.opts.Timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probeStream is the part of a processor or sink stream the credit probe
// needs.
type probeStream struct {
	send      func(seq uint64, events []*streamv1.Event) error
	closeSend func() error
	// recv returns the credit granted and the seq answered (0: none).
	recv func() (credit uint32, seq uint64, err error)
}

func (r *runner) openProbe(ctx context.Context, cc *grpc.ClientConn) (*probeStream, error) {
	if r.opts.Role == flow.RoleSink {
		st, err := streamv1.NewSinkServiceClient(cc).Write(ctx)
		if err != nil {
			return nil, err
		}
		return &probeStream{
			send: func(seq uint64, ev []*streamv1.Event) error {
				return st.Send(&streamv1.SinkRequest{Batch: &streamv1.Batch{Seq: seq, Events: ev}})
			},
			closeSend: st.CloseSend,
			recv: func() (uint32, uint64, error) {
				m, err := st.Recv()
				return m.GetCredit().GetBatches(), m.GetAck().GetSeq(), err
			},
		}, nil
	}
	st, err := streamv1.NewProcessorServiceClient(cc).Process(ctx)
	if err != nil {
		return nil, err
	}
	return &probeStream{
		send: func(seq uint64, ev []*streamv1.Event) error {
			return st.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: seq, Events: ev}})
		},
		closeSend: st.CloseSend,
		recv: func() (uint32, uint64, error) {
			m, err := st.Recv()
			return m.GetCredit().GetBatches(), m.GetResult().GetSeq(), err
		},
	}, nil
}

// grpcProbeBudget is how much the credit probe sends before it concludes
// that the component takes input without bound. It exceeds what HTTP/2
// flow control can hold for a component that stopped reading (gRPC grows a
// stream's window up to 16 MiB).
const grpcProbeBudget = 64 << 20

// grpcCredits opens one raw stream beside the conn's (the conn by
// construction never sends beyond credit), reads the initial credit C,
// then stops reading the component's answers and sends batches of 4 KiB
// without waiting for credit. A component that keeps its credit refuses
// them (the protocol says with RESOURCE_EXHAUSTED) or, once its answers
// back up, stops taking more, so the sends stall; one that queues its
// input whatever happens to its answers takes the whole budget.
func (r *runner) grpcCredits(ctx context.Context, _ *instance) (Outcome, string) {
	ep, ok := r.rt.ControlPlane.Endpoint(r.comp.Name)
	if !ok {
		return Fail, fmt.Sprintf("component %q is not registered", r.comp.Name)
	}
	// Small fixed receive windows (no BDP growth) so that unread answers
	// push back on the component quickly.
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	if err != nil {
		return Fail, fmt.Sprintf("dial %s: %v", ep, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps, err := r.openProbe(ctx, cc)
	if err != nil {
		return Fail, fmt.Sprintf("open a stream on %s: %v", ep, err)
	}
	first := make(chan error, 1)
	var credit uint32
	var seq uint64
	go func() {
		var err error
		credit, seq, err = ps.recv()
		first <- err
	}()
	select {
	case err = <-first:
	case <-time.After(r.opts.Timeout):
		err = fmt.Errorf("none within %v", r.opts.Timeout)
	}
	switch {
	case err != nil:
		return Fail, fmt.Sprintf("no first message with the initial credit: %v", err)
	case credit == 0:
		return Fail, fmt.Sprintf("first message grants no credit (answers seq %d): the initial credit must come first", seq)
	case credit > MaxCredit:
		return Fail, fmt.Sprintf("grants %d batches up front: more than %d is no bound", credit, MaxCredit)
	}
	initial := int(credit)

	// Small batches, so that even a sink, whose answers are a few bytes,
	// fills the 64 KiB answer window long before the budget is spent: with
	// 64 KiB batches a sink that answers as fast as it reads took the whole
	// budget before its answers backed up, and passed or failed by timing.
	const eventSize = 4 << 10
	pad := strings.Repeat("x", eventSize-100)
	var sentBytes, sentBatches atomic.Int64
	sendDone := make(chan error, 1)
	go func() {
		for i := 1; sentBytes.Load() < grpcProbeBudget; i++ {
			ev := []*streamv1.Event{{Id: fmt.Sprintf("credit-probe-%d", i), Type: "conformance",
				Data: []byte(fmt.Sprintf(`{"id":%d,"amount":%d,"kind":"payment","pad":"%s"}`, i, i, pad))}}
			if err := ps.send(uint64(1<<40+i), ev); err != nil {
				sendDone <- err
				return
			}
			sentBytes.Add(eventSize)
			sentBatches.Add(1)
		}
		sendDone <- nil
	}()
	last, lastChange := int64(-1), time.Now()
	for {
		select {
		case err := <-sendDone:
			if err == nil {
				return Fail, fmt.Sprintf("initial credit %d; with its answers unread it took %d batches (%s) and kept taking: it reads ahead without bound",
					initial, sentBatches.Load(), size(sentBytes.Load()))
			}
			// The stream ended under the sender: read the status.
			code := codes.Unknown
			for {
				if _, _, rerr := ps.recv(); rerr != nil {
					code = status.Code(rerr)
					if errors.Is(rerr, io.EOF) {
						code = codes.OK
					}
					break
				}
			}
			if code == codes.ResourceExhausted {
				return Pass, fmt.Sprintf("initial credit %d; refused batch %d sent beyond its credit with RESOURCE_EXHAUSTED", initial, sentBatches.Load()+1)
			}
			return Pass, fmt.Sprintf("initial credit %d; ended the stream (%v) at batch %d sent beyond its credit (the protocol asks for RESOURCE_EXHAUSTED)", initial, code, sentBatches.Load()+1)
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return Fail, ctx.Err().Error()
		}
		n := sentBytes.Load()
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= stall {
			return Pass, fmt.Sprintf("initial credit %d; with its answers unread it stopped taking batches after %d (%s in transit and taken)",
				initial, sentBatches.Load(), size(n))
		}
	}
}
