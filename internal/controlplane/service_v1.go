package controlplane

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// v1Service serves the earlier flowctl.v1.ControlPlaneService over the same
// Registry, so a component built against that contract registers exactly
// as it did. Its service_id is the component id.
type v1Service struct {
	flowctlv1.UnimplementedControlPlaneServiceServer
	reg *Registry
}

func (s *v1Service) RegisterComponent(_ context.Context, req *flowctlv1.RegisterRequest) (*flowctlv1.RegisterResponse, error) {
	c := req.GetComponent()
	if c == nil {
		return nil, status.Error(codes.InvalidArgument, "register component: component info is missing")
	}
	id := req.GetComponentId()
	if id == "" {
		id = c.GetId()
	}
	e, err := s.reg.Register(Registration{
		ID:          id,
		Name:        c.GetName(),
		Version:     c.GetVersion(),
		Description: c.GetDescription(),
		Role:        RoleFromV1(c.GetType()),
		Endpoint:    c.GetEndpoint(),
		InputTypes:  c.GetInputEventTypes(),
		OutputTypes: c.GetOutputEventTypes(),
		Metadata:    c.GetMetadata(),
		Protocol:    ProtocolV1,
	})
	if err != nil {
		return nil, grpcError(err)
	}
	return &flowctlv1.RegisterResponse{ServiceId: e.ID}, nil
}

func (s *v1Service) UnregisterComponent(_ context.Context, req *flowctlv1.UnregisterRequest) (*emptypb.Empty, error) {
	s.reg.Deregister(req.GetServiceId())
	return &emptypb.Empty{}, nil
}

func (s *v1Service) DiscoverComponents(_ context.Context, req *flowctlv1.DiscoveryRequest) (*flowctlv1.DiscoveryResponse, error) {
	q := Query{
		Role:       RoleFromV1(req.GetType()),
		EventTypes: req.GetEventTypes(),
		Metadata:   req.GetMetadataFilters(),
	}
	resp := &flowctlv1.DiscoveryResponse{}
	for _, e := range s.reg.Discover(q) {
		resp.Components = append(resp.Components, infoToV1(e))
	}
	return resp, nil
}

func (s *v1Service) Heartbeat(_ context.Context, req *flowctlv1.HeartbeatRequest) (*emptypb.Empty, error) {
	if _, err := s.reg.Heartbeat(req.GetServiceId(), Health(req.GetStatus()), req.GetMetrics()); err != nil {
		return nil, grpcError(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *v1Service) GetComponentStatus(_ context.Context, req *flowctlv1.ComponentStatusRequest) (*flowctlv1.ComponentStatusResponse, error) {
	e, ok := s.reg.Get(req.GetServiceId())
	if !ok {
		return nil, grpcError(fmt.Errorf("component status %q: %w", req.GetServiceId(), ErrNotFound))
	}
	return statusToV1(e), nil
}

func (s *v1Service) ListComponents(_ context.Context, req *flowctlv1.ListComponentsRequest) (*flowctlv1.ListComponentsResponse, error) {
	q := Query{Role: RoleFromV1(req.GetTypeFilter()), IncludeUnhealthy: req.GetIncludeUnhealthy()}
	resp := &flowctlv1.ListComponentsResponse{}
	for _, e := range s.reg.Discover(q) {
		resp.Components = append(resp.Components, statusToV1(e))
	}
	return resp, nil
}
