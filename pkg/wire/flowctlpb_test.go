package wire_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
)

// TestFlowctlOlderWireContract pins the field numbers and types of the
// older protobuf package flowctl (compat/flowctl-v1.md), so that an edit
// of proto/flowctl/flowctl.proto cannot silently break the components that
// register through flowctl.ControlPlane.
func TestFlowctlOlderWireContract(t *testing.T) {
	ts := "google.protobuf.Timestamp"
	cases := []struct {
		msg, name string
		num       protoreflect.FieldNumber
		kind      string // protoreflect kind, message full name, or map<K,V>
		repeated  bool
	}{
		{"ServiceInfo", "service_id", 1, "string", false},
		{"ServiceInfo", "service_type", 2, "enum", false},
		{"ServiceInfo", "input_event_types", 3, "string", true},
		{"ServiceInfo", "output_event_types", 4, "string", true},
		{"ServiceInfo", "health_endpoint", 5, "string", false},
		{"ServiceInfo", "max_inflight", 6, "int32", false},
		{"ServiceInfo", "metadata", 7, "map<string,string>", false},
		{"ServiceInfo", "component_id", 8, "string", false},
		{"RegistrationAck", "service_id", 1, "string", false},
		{"RegistrationAck", "topic_names", 2, "string", true},
		{"RegistrationAck", "connection_info", 3, "map<string,string>", false},
		{"ServiceHeartbeat", "service_id", 1, "string", false},
		{"ServiceHeartbeat", "timestamp", 2, ts, false},
		{"ServiceHeartbeat", "metrics", 3, "map<string,double>", false},
		{"ServiceStatus", "service_id", 1, "string", false},
		{"ServiceStatus", "service_type", 2, "enum", false},
		{"ServiceStatus", "is_healthy", 3, "bool", false},
		{"ServiceStatus", "last_heartbeat", 4, ts, false},
		{"ServiceStatus", "metrics", 5, "map<string,double>", false},
		{"ServiceStatus", "component_id", 6, "string", false},
		{"ServiceList", "services", 1, "flowctl.ServiceStatus", true},
		{"ComponentMetrics", "events_in", 1, "int64", false},
		{"ComponentMetrics", "events_out", 2, "int64", false},
		{"ComponentMetrics", "bytes_in", 3, "int64", false},
		{"ComponentMetrics", "bytes_out", 4, "int64", false},
		{"ComponentMetrics", "processing_time_ms", 5, "double", false},
		{"RunMetrics", "events_processed", 1, "int64", false},
		{"RunMetrics", "events_per_second", 2, "double", false},
		{"RunMetrics", "bytes_processed", 3, "int64", false},
		{"RunMetrics", "component_metrics", 4, "map<string,flowctl.ComponentMetrics>", false},
		{"PipelineRun", "run_id", 1, "string", false},
		{"PipelineRun", "pipeline_id", 2, "string", false},
		{"PipelineRun", "pipeline_name", 3, "string", false},
		{"PipelineRun", "status", 4, "enum", false},
		{"PipelineRun", "start_time", 5, ts, false},
		{"PipelineRun", "end_time", 6, ts, false},
		{"PipelineRun", "config_yaml", 7, "string", false},
		{"PipelineRun", "metrics", 8, "flowctl.RunMetrics", false},
		{"PipelineRun", "error", 9, "string", false},
		{"PipelineRun", "component_ids", 10, "string", true},
		{"CreatePipelineRunRequest", "run_id", 1, "string", false},
		{"CreatePipelineRunRequest", "pipeline_name", 2, "string", false},
		{"CreatePipelineRunRequest", "config_yaml", 3, "string", false},
		{"CreatePipelineRunRequest", "component_ids", 4, "string", true},
		{"UpdatePipelineRunRequest", "run_id", 1, "string", false},
		{"UpdatePipelineRunRequest", "status", 2, "enum", false},
		{"UpdatePipelineRunRequest", "metrics", 3, "flowctl.RunMetrics", false},
		{"UpdatePipelineRunRequest", "error", 4, "string", false},
		{"GetPipelineRunRequest", "run_id", 1, "string", false},
		{"ListPipelineRunsRequest", "pipeline_name", 1, "string", false},
		{"ListPipelineRunsRequest", "status", 2, "enum", false},
		{"ListPipelineRunsRequest", "limit", 3, "int32", false},
		{"ListPipelineRunsResponse", "runs", 1, "flowctl.PipelineRun", true},
		{"StopPipelineRunRequest", "run_id", 1, "string", false},
		{"Event", "event_type", 1, "string", false},
		{"Event", "payload", 2, "bytes", false},
		{"Event", "schema_version", 3, "uint32", false},
		{"Event", "timestamp", 4, ts, false},
		{"Event", "metadata", 5, "map<string,string>", false},
		{"Pong", "version", 1, "string", false},
		{"Pong", "healthy", 2, "bool", false},
		{"ShutdownRequest", "graceful", 1, "bool", false},
		{"ShutdownRequest", "reason", 2, "string", false},
		{"SinkAck", "success", 1, "bool", false},
		{"SinkAck", "error", 2, "string", false},
		{"SinkAck", "metadata", 3, "map<string,string>", false},
	}
	fd := flowctlpb.File_flowctl_flowctl_proto
	if got := string(fd.Package()); got != "flowctl" {
		t.Fatalf("package = %q, want flowctl", got)
	}
	kindOf := func(f protoreflect.FieldDescriptor) string {
		if f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind {
			return string(f.Message().FullName())
		}
		return f.Kind().String()
	}
	for _, c := range cases {
		t.Run(c.msg+"."+c.name, func(t *testing.T) {
			md := fd.Messages().ByName(protoreflect.Name(c.msg))
			if md == nil {
				t.Fatalf("message %s missing", c.msg)
			}
			f := md.Fields().ByName(protoreflect.Name(c.name))
			if f == nil {
				t.Fatalf("field %s missing", c.name)
			}
			if f.Number() != c.num {
				t.Errorf("number = %d, want %d", f.Number(), c.num)
			}
			kind := kindOf(f)
			if f.IsMap() {
				kind = "map<" + kindOf(f.MapKey()) + "," + kindOf(f.MapValue()) + ">"
			}
			if kind != c.kind {
				t.Errorf("kind = %s, want %s", kind, c.kind)
			}
			if !f.IsMap() && f.IsList() != c.repeated {
				t.Errorf("repeated = %v, want %v", f.IsList(), c.repeated)
			}
		})
	}

	enums := map[string][]string{
		"ServiceType": {"SERVICE_TYPE_UNSPECIFIED", "SERVICE_TYPE_SOURCE", "SERVICE_TYPE_PROCESSOR", "SERVICE_TYPE_SINK", "SERVICE_TYPE_PIPELINE"},
		"RunStatus": {"RUN_STATUS_UNKNOWN", "RUN_STATUS_STARTING", "RUN_STATUS_RUNNING",
			"RUN_STATUS_COMPLETED", "RUN_STATUS_FAILED", "RUN_STATUS_STOPPED"},
	}
	for name, values := range enums {
		ed := fd.Enums().ByName(protoreflect.Name(name))
		if ed == nil {
			t.Errorf("enum %s missing", name)
			continue
		}
		for i, v := range values {
			if ev := ed.Values().ByName(protoreflect.Name(v)); ev == nil || ev.Number() != protoreflect.EnumNumber(i) {
				t.Errorf("enum %s: %s is not %d", name, v, i)
			}
		}
	}

	methods := map[string]string{
		"ControlPlane": "Register(ServiceInfo)RegistrationAck Heartbeat(ServiceHeartbeat)Empty GetServiceStatus(ServiceInfo)ServiceStatus ListServices(Empty)ServiceList " +
			"CreatePipelineRun(CreatePipelineRunRequest)PipelineRun UpdatePipelineRun(UpdatePipelineRunRequest)PipelineRun GetPipelineRun(GetPipelineRunRequest)PipelineRun " +
			"ListPipelineRuns(ListPipelineRunsRequest)ListPipelineRunsResponse StopPipelineRun(StopPipelineRunRequest)PipelineRun",
		"EventProcessor": "Process(stream:Event)stream:Event Ping(Empty)Pong Shutdown(ShutdownRequest)Empty",
		"EventSink":      "Ingest(stream:Event)SinkAck Ping(Empty)Pong Shutdown(ShutdownRequest)Empty",
	}
	for name, want := range methods {
		sd := fd.Services().ByName(protoreflect.Name(name))
		if sd == nil {
			t.Errorf("service %s missing", name)
			continue
		}
		var got []string
		for i := 0; i < sd.Methods().Len(); i++ {
			m := sd.Methods().Get(i)
			in, out := string(m.Input().Name()), string(m.Output().Name())
			if m.IsStreamingClient() {
				in = "stream:" + in
			}
			if m.IsStreamingServer() {
				out = "stream:" + out
			}
			got = append(got, string(m.Name())+"("+in+")"+out)
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("service %s:\n got %s\nwant %s", name, g, want)
		}
	}
}
