package controlplane

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// streamService serves flowctl.stream.v1.ControlPlaneService over a
// Registry.
type streamService struct {
	streamv1.UnimplementedControlPlaneServiceServer
	reg  *Registry
	done <-chan struct{} // closed when the Server stops, ending watches
}

func (s *streamService) Register(_ context.Context, req *streamv1.RegisterRequest) (*streamv1.RegisterResponse, error) {
	if req.GetRegistration() == nil {
		return nil, status.Error(codes.InvalidArgument, "register: registration is missing")
	}
	e, err := s.reg.Register(registrationFromStream(req.GetRegistration()))
	if err != nil {
		return nil, grpcError(err)
	}
	return &streamv1.RegisterResponse{
		Status:            statusToStream(e),
		HeartbeatInterval: durationpb.New(s.reg.HeartbeatInterval()),
	}, nil
}

func (s *streamService) Heartbeat(_ context.Context, req *streamv1.HeartbeatRequest) (*streamv1.HeartbeatResponse, error) {
	if _, err := s.reg.Heartbeat(req.GetId(), Health(req.GetHealth()), req.GetMetrics()); err != nil {
		return nil, grpcError(err)
	}
	return &streamv1.HeartbeatResponse{}, nil
}

func (s *streamService) Deregister(_ context.Context, req *streamv1.DeregisterRequest) (*streamv1.DeregisterResponse, error) {
	s.reg.Deregister(req.GetId())
	return &streamv1.DeregisterResponse{}, nil
}

func (s *streamService) List(context.Context, *streamv1.ListRequest) (*streamv1.ListResponse, error) {
	resp := &streamv1.ListResponse{}
	for _, e := range s.reg.List() {
		resp.Components = append(resp.Components, statusToStream(e))
	}
	return resp, nil
}

func (s *streamService) Discover(_ context.Context, req *streamv1.DiscoverRequest) (*streamv1.DiscoverResponse, error) {
	q := Query{
		Role:             RoleFromStream(req.GetRole()),
		EventTypes:       req.GetEventTypes(),
		Metadata:         req.GetMetadata(),
		IncludeUnhealthy: req.GetIncludeUnhealthy(),
	}
	resp := &streamv1.DiscoverResponse{}
	for _, e := range s.reg.Discover(q) {
		resp.Components = append(resp.Components, statusToStream(e))
	}
	return resp, nil
}

func (s *streamService) Watch(req *streamv1.WatchRequest, stream streamv1.ControlPlaneService_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	w := s.reg.Watch(ctx, req.GetInitial())
	for {
		select {
		case <-s.done:
			return status.Error(codes.Unavailable, "watch: control plane is stopping")
		case ch, ok := <-w.C:
			if !ok {
				if errors.Is(w.Err(), ErrWatchOverflow) {
					return status.Error(codes.ResourceExhausted, "watch: watcher fell behind; List and Watch again")
				}
				return status.FromContextError(w.Err()).Err()
			}
			err := stream.Send(&streamv1.Change{
				Kind:      streamv1.ChangeKind(ch.Kind),
				Component: statusToStream(ch.Entry),
			})
			if err != nil {
				return err
			}
		}
	}
}

// grpcError maps registry errors to gRPC status codes.
func grpcError(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
