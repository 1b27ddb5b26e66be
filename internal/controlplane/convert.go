package controlplane

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// RoleFromStream maps a native wire role to a flow role ("" when
// unspecified).
func RoleFromStream(r streamv1.Role) flow.Role {
	switch r {
	case streamv1.Role_ROLE_SOURCE:
		return flow.RoleSource
	case streamv1.Role_ROLE_PROCESSOR:
		return flow.RoleProcessor
	case streamv1.Role_ROLE_SINK:
		return flow.RoleSink
	default:
		return ""
	}
}

// RoleToStream maps a flow role to the native wire role.
func RoleToStream(r flow.Role) streamv1.Role {
	switch r {
	case flow.RoleSource:
		return streamv1.Role_ROLE_SOURCE
	case flow.RoleProcessor:
		return streamv1.Role_ROLE_PROCESSOR
	case flow.RoleSink:
		return streamv1.Role_ROLE_SINK
	default:
		return streamv1.Role_ROLE_UNSPECIFIED
	}
}

// RoleFromV1 maps a flowctl.v1 component type to a flow role; CONSUMER is
// a sink.
func RoleFromV1(t flowctlv1.ComponentType) flow.Role {
	switch t {
	case flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE:
		return flow.RoleSource
	case flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR:
		return flow.RoleProcessor
	case flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER:
		return flow.RoleSink
	default:
		return ""
	}
}

// RoleToV1 maps a flow role to a flowctl.v1 component type.
func RoleToV1(r flow.Role) flowctlv1.ComponentType {
	switch r {
	case flow.RoleSource:
		return flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE
	case flow.RoleProcessor:
		return flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR
	case flow.RoleSink:
		return flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER
	default:
		return flowctlv1.ComponentType_COMPONENT_TYPE_UNSPECIFIED
	}
}

func registrationFromStream(p *streamv1.Registration) Registration {
	reg := Registration{
		ID:          p.GetId(),
		Name:        p.GetName(),
		Version:     p.GetVersion(),
		Role:        RoleFromStream(p.GetRole()),
		Endpoint:    p.GetEndpoint(),
		InputTypes:  p.GetInputEventTypes(),
		OutputTypes: p.GetOutputEventTypes(),
		Metadata:    p.GetMetadata(),
		Protocol:    ProtocolStream,
	}
	if p.GetTtl() != nil {
		reg.TTL = p.GetTtl().AsDuration()
	}
	return reg
}

func registrationToStream(r Registration) *streamv1.Registration {
	return &streamv1.Registration{
		Id:               r.ID,
		Role:             RoleToStream(r.Role),
		Endpoint:         r.Endpoint,
		InputEventTypes:  r.InputTypes,
		OutputEventTypes: r.OutputTypes,
		Metadata:         r.Metadata,
		Ttl:              durationpb.New(r.TTL),
		Name:             r.Name,
		Version:          r.Version,
	}
}

func statusToStream(e Entry) *streamv1.ComponentStatus {
	return &streamv1.ComponentStatus{
		Registration:  registrationToStream(e.Registration),
		Health:        streamv1.HealthStatus(e.Health),
		RegisteredAt:  timestamp(e.RegisteredAt),
		LastHeartbeat: timestamp(e.LastHeartbeat),
		Metrics:       e.Metrics,
		Protocol:      e.Protocol,
		Ttl:           durationpb.New(e.TTL),
	}
}

func infoToV1(e Entry) *flowctlv1.ComponentInfo {
	return &flowctlv1.ComponentInfo{
		Id:               e.ID,
		Name:             e.Name,
		Description:      e.Description,
		Version:          e.Version,
		Type:             RoleToV1(e.Role),
		InputEventTypes:  e.InputTypes,
		OutputEventTypes: e.OutputTypes,
		Endpoint:         e.Endpoint,
		Metadata:         e.Metadata,
	}
}

func statusToV1(e Entry) *flowctlv1.ComponentStatusResponse {
	return &flowctlv1.ComponentStatusResponse{
		Component:     infoToV1(e),
		Status:        flowctlv1.HealthStatus(e.Health),
		LastHeartbeat: timestamp(e.LastHeartbeat),
		Metrics:       e.Metrics,
		RegisteredAt:  timestamp(e.RegisteredAt),
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
