package controlplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
)

// ProtocolLegacy is the older control plane of the earlier flowctl
// (protobuf package flowctl, service ControlPlane). Components that
// register through it serve no stream service flowctl drives: they move
// their data themselves.
const ProtocolLegacy = "flowctl"

// MetaHealthEndpoint is the metadata key under which a registration made
// through flowctl.ControlPlane keeps its ServiceInfo.health_endpoint.
const MetaHealthEndpoint = "health_endpoint"

// RunStatus is where a run is; the values equal flowctl.RunStatus.
type RunStatus int32

// Run statuses.
const (
	RunUnknown   RunStatus = 0
	RunStarting  RunStatus = 1
	RunRunning   RunStatus = 2
	RunCompleted RunStatus = 3
	RunFailed    RunStatus = 4
	RunStopped   RunStatus = 5
)

// Run is one pipeline run as the older ControlPlane reports it.
type Run struct {
	// ID is "PIPELINE/N" (N the run's number; "local" for a `flowctl run`
	// that no server started).
	ID       string
	Pipeline string
	Status   RunStatus
	// Start and End bound the run; End is zero while it runs.
	Start, End time.Time
	// Config is the pipeline file the run runs, when known.
	Config string
	// Error says why it failed or stopped.
	Error string
	// Components are the ids of its components.
	Components []string
	// EventsProcessed counts the events its sources emitted.
	EventsProcessed int64
	// In and Out count each component's events in and out, by id.
	In, Out map[string]int64
}

// Runs answers the run calls of flowctl.ControlPlane from flowctl's own run
// history: `flowctl server`'s store, or the one run of `flowctl run`.
type Runs interface {
	// GetRun returns the run with id, or an error wrapping ErrRunNotFound.
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns the runs of pipeline (every pipeline when ""),
	// newest first, at most limit of them (limit > 0).
	ListRuns(ctx context.Context, pipeline string, limit int) ([]Run, error)
}

// ErrRunNotFound means no run has the id.
var ErrRunNotFound = errors.New("run not found")

// OneRun is the Runs of a process that runs one pipeline: current
// returns the run as it is now.
func OneRun(current func() Run) Runs { return oneRun(current) }

type oneRun func() Run

func (f oneRun) GetRun(_ context.Context, id string) (Run, error) {
	r := f()
	if id != r.ID {
		return Run{}, fmt.Errorf("run %q: %w (this control plane runs only %q)", id, ErrRunNotFound, r.ID)
	}
	return r, nil
}

func (f oneRun) ListRuns(_ context.Context, pipeline string, _ int) ([]Run, error) {
	r := f()
	if pipeline != "" && pipeline != r.Pipeline {
		return nil, nil
	}
	return []Run{r}, nil
}

// defaultRunLimit is ListPipelineRuns' limit when the request gives none,
// as the earlier flowctl had it.
const defaultRunLimit = 10

// legacyService serves flowctl.ControlPlane over the same Registry as the
// other control-plane services. A registration's id (and the service_id
// answered) is ServiceInfo.component_id when set, else its service_id, as
// the earlier flowctl did. Runs are answered from Runs (set late, once the
// run exists); creating, updating and stopping a run through this service
// is refused: flowctl starts, observes and stops its runs itself.
type legacyService struct {
	flowctlpb.UnimplementedControlPlaneServer
	reg  *Registry
	runs atomic.Pointer[runsBox]
}

type runsBox struct{ r Runs }

func (s *legacyService) setRuns(r Runs) {
	if r == nil {
		s.runs.Store(nil)
		return
	}
	s.runs.Store(&runsBox{r})
}

// legacyID is the id a ServiceInfo names.
func legacyID(info *flowctlpb.ServiceInfo) string {
	if id := info.GetComponentId(); id != "" {
		return id
	}
	return info.GetServiceId()
}

// RoleFromLegacy maps a flowctl ServiceType to a flow role ("" for
// unspecified and PIPELINE).
func RoleFromLegacy(t flowctlpb.ServiceType) flow.Role {
	switch t {
	case flowctlpb.ServiceType_SERVICE_TYPE_SOURCE:
		return flow.RoleSource
	case flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR:
		return flow.RoleProcessor
	case flowctlpb.ServiceType_SERVICE_TYPE_SINK:
		return flow.RoleSink
	default:
		return ""
	}
}

// RoleToLegacy maps a flow role to a flowctl ServiceType.
func RoleToLegacy(r flow.Role) flowctlpb.ServiceType {
	switch r {
	case flow.RoleSource:
		return flowctlpb.ServiceType_SERVICE_TYPE_SOURCE
	case flow.RoleProcessor:
		return flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR
	case flow.RoleSink:
		return flowctlpb.ServiceType_SERVICE_TYPE_SINK
	default:
		return flowctlpb.ServiceType_SERVICE_TYPE_UNSPECIFIED
	}
}

func (s *legacyService) Register(_ context.Context, info *flowctlpb.ServiceInfo) (*flowctlpb.RegistrationAck, error) {
	id := legacyID(info)
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "register: service_id and component_id are both empty; set component_id to FLOWCTL_COMPONENT_ID")
	}
	md := maps.Clone(info.GetMetadata())
	if he := info.GetHealthEndpoint(); he != "" {
		if md == nil {
			md = map[string]string{}
		}
		if _, ok := md[MetaHealthEndpoint]; !ok {
			md[MetaHealthEndpoint] = he
		}
	}
	e, err := s.reg.Register(Registration{
		ID:          id,
		Name:        info.GetServiceId(),
		Role:        RoleFromLegacy(info.GetServiceType()),
		InputTypes:  info.GetInputEventTypes(),
		OutputTypes: info.GetOutputEventTypes(),
		Metadata:    md,
		Protocol:    ProtocolLegacy,
	})
	if err != nil {
		return nil, grpcError(err)
	}
	return &flowctlpb.RegistrationAck{
		ServiceId: e.ID,
		ConnectionInfo: map[string]string{
			"heartbeat_interval": s.reg.HeartbeatInterval().String(),
			"ttl":                e.TTL.String(),
		},
	}, nil
}

func (s *legacyService) Heartbeat(_ context.Context, hb *flowctlpb.ServiceHeartbeat) (*emptypb.Empty, error) {
	var metrics map[string]string
	if m := hb.GetMetrics(); len(m) > 0 {
		metrics = make(map[string]string, len(m))
		for k, v := range m {
			metrics[k] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	if _, err := s.reg.Heartbeat(hb.GetServiceId(), HealthUnknown, metrics); err != nil {
		return nil, grpcError(fmt.Errorf("%w; register again", err))
	}
	return &emptypb.Empty{}, nil
}

func (s *legacyService) GetServiceStatus(_ context.Context, info *flowctlpb.ServiceInfo) (*flowctlpb.ServiceStatus, error) {
	id := legacyID(info)
	e, ok := s.reg.Get(id)
	if !ok && info.GetServiceId() != "" {
		e, ok = s.reg.Get(info.GetServiceId())
	}
	if !ok {
		return nil, grpcError(fmt.Errorf("service status %q: %w", id, ErrNotFound))
	}
	return statusToLegacy(e), nil
}

func (s *legacyService) ListServices(context.Context, *emptypb.Empty) (*flowctlpb.ServiceList, error) {
	out := &flowctlpb.ServiceList{}
	for _, e := range s.reg.List() {
		out.Services = append(out.Services, statusToLegacy(e))
	}
	return out, nil
}

func statusToLegacy(e Entry) *flowctlpb.ServiceStatus {
	var metrics map[string]float64
	for k, v := range e.Metrics {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue // text metrics (a health reason) have no number
		}
		if metrics == nil {
			metrics = map[string]float64{}
		}
		metrics[k] = f
	}
	return &flowctlpb.ServiceStatus{
		ServiceId:     e.ID,
		ServiceType:   RoleToLegacy(e.Role),
		IsHealthy:     e.Health == HealthHealthy,
		LastHeartbeat: timestamp(e.LastHeartbeat),
		Metrics:       metrics,
		ComponentId:   e.ID,
	}
}

// refuseRun is the answer to the calls that would change a run.
func refuseRun(call string) error {
	return status.Errorf(codes.FailedPrecondition,
		"%s: flowctl starts, records and stops its pipeline runs itself, so a component cannot %s one; "+
			"start a run with `flowctl run -f FILE` or `flowctl apply -f FILE`, stop it with a signal or `flowctl delete PIPELINE`, and read runs with GetPipelineRun/ListPipelineRuns",
		call, map[string]string{"CreatePipelineRun": "create", "UpdatePipelineRun": "update", "StopPipelineRun": "stop"}[call])
}

func (s *legacyService) CreatePipelineRun(context.Context, *flowctlpb.CreatePipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, refuseRun("CreatePipelineRun")
}

func (s *legacyService) UpdatePipelineRun(context.Context, *flowctlpb.UpdatePipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, refuseRun("UpdatePipelineRun")
}

func (s *legacyService) StopPipelineRun(context.Context, *flowctlpb.StopPipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, refuseRun("StopPipelineRun")
}

func (s *legacyService) runsOrErr() (Runs, error) {
	b := s.runs.Load()
	if b == nil {
		return nil, status.Error(codes.Unavailable, "no run history yet: the run is still starting; try again")
	}
	return b.r, nil
}

func (s *legacyService) GetPipelineRun(ctx context.Context, req *flowctlpb.GetPipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	runs, err := s.runsOrErr()
	if err != nil {
		return nil, err
	}
	if req.GetRunId() == "" {
		return nil, status.Error(codes.InvalidArgument, "get pipeline run: run_id is empty; ListPipelineRuns shows the ids (PIPELINE/N)")
	}
	r, err := runs.GetRun(ctx, req.GetRunId())
	if err != nil {
		if errors.Is(err, ErrRunNotFound) {
			return nil, status.Errorf(codes.NotFound, "%v; ListPipelineRuns shows the ids (PIPELINE/N)", err)
		}
		return nil, status.Errorf(codes.Internal, "get pipeline run %q: %v", req.GetRunId(), err)
	}
	return runToLegacy(r), nil
}

func (s *legacyService) ListPipelineRuns(ctx context.Context, req *flowctlpb.ListPipelineRunsRequest) (*flowctlpb.ListPipelineRunsResponse, error) {
	runs, err := s.runsOrErr()
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = defaultRunLimit
	}
	want := RunStatus(req.GetStatus())
	// With a status filter, read them all and keep limit of the matching.
	fetch := limit
	if want != RunUnknown {
		fetch = 0
	}
	list, err := runs.ListRuns(ctx, req.GetPipelineName(), fetch)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list pipeline runs: %v", err)
	}
	out := &flowctlpb.ListPipelineRunsResponse{}
	for _, r := range list {
		if want != RunUnknown && r.Status != want {
			continue
		}
		out.Runs = append(out.Runs, runToLegacy(r))
		if len(out.Runs) == limit {
			break
		}
	}
	return out, nil
}

func runToLegacy(r Run) *flowctlpb.PipelineRun {
	m := &flowctlpb.RunMetrics{EventsProcessed: r.EventsProcessed}
	end := r.End
	if end.IsZero() {
		end = time.Now()
	}
	if secs := end.Sub(r.Start).Seconds(); secs > 0 && !r.Start.IsZero() {
		m.EventsPerSecond = float64(r.EventsProcessed) / secs
	}
	for _, id := range r.Components {
		in, out := r.In[id], r.Out[id]
		if in == 0 && out == 0 {
			continue
		}
		if m.ComponentMetrics == nil {
			m.ComponentMetrics = map[string]*flowctlpb.ComponentMetrics{}
		}
		m.ComponentMetrics[id] = &flowctlpb.ComponentMetrics{EventsIn: in, EventsOut: out}
	}
	return &flowctlpb.PipelineRun{
		RunId:        r.ID,
		PipelineId:   r.Pipeline,
		PipelineName: r.Pipeline,
		Status:       flowctlpb.RunStatus(r.Status),
		StartTime:    timestamp(r.Start),
		EndTime:      timestamp(r.End),
		ConfigYaml:   r.Config,
		Metrics:      m,
		Error:        r.Error,
		ComponentIds: r.Components,
	}
}
