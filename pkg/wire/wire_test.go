package wire_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// TestGeneratedUpToDate regenerates the Go code into a temporary directory
// and compares it with the committed files. It needs protoc, so it skips
// where protoc is not installed (CI does not regenerate).
func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed; install it with .ci/install-protoc.sh to run this check")
	}
	if testing.Short() {
		t.Skip("regenerating code is slow; skipped with -short")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../../scripts/genproto.sh")
	cmd.Env = append(os.Environ(), "GENPROTO_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/genproto.sh: %v\n%s", err, b)
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(out, "pkg", "wire"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(out, "pkg", "wire"), path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s is generated but not committed: run scripts/genproto.sh", rel)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pkg/wire/%s is out of date with proto/: run scripts/genproto.sh", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("genproto.sh generated no files")
	}
}

// TestFlowctlV1WireContract pins the flowctl.v1 field numbers and types of
// compat/flowctl-v1.md, so an edit of flowctl.proto cannot silently break
// components built against the earlier contract.
func TestFlowctlV1WireContract(t *testing.T) {
	type field struct {
		msg, name string
		num       protoreflect.FieldNumber
		kind      string // protoreflect kind, message full name or "map"
		repeated  bool
	}
	ts := "google.protobuf.Timestamp"
	cases := []field{
		{"Event", "id", 1, "string", false},
		{"Event", "type", 2, "string", false},
		{"Event", "payload", 3, "bytes", false},
		{"Event", "metadata", 4, "map", false},
		{"Event", "timestamp", 5, ts, false},
		{"Event", "source_component_id", 6, "string", false},
		{"Event", "content_type", 7, "string", false},
		{"Event", "stellar_cursor", 8, "flowctl.v1.StellarCursor", false},
		{"StellarCursor", "ledger_sequence", 1, "uint64", false},
		{"StellarCursor", "index_in_ledger", 2, "uint32", false},
		{"ComponentInfo", "id", 1, "string", false},
		{"ComponentInfo", "name", 2, "string", false},
		{"ComponentInfo", "description", 3, "string", false},
		{"ComponentInfo", "version", 4, "string", false},
		{"ComponentInfo", "type", 5, "enum", false},
		{"ComponentInfo", "input_event_types", 6, "string", true},
		{"ComponentInfo", "output_event_types", 7, "string", true},
		{"ComponentInfo", "endpoint", 8, "string", false},
		{"ComponentInfo", "metadata", 9, "map", false},
		{"HealthCheckRequest", "include_details", 1, "bool", false},
		{"HealthCheckResponse", "status", 1, "enum", false},
		{"HealthCheckResponse", "metrics", 2, "map", false},
		{"HealthCheckResponse", "components", 3, "flowctl.v1.ComponentHealth", true},
		{"HealthCheckResponse", "message", 4, "string", false},
		{"ComponentHealth", "component_name", 1, "string", false},
		{"ComponentHealth", "status", 2, "enum", false},
		{"ComponentHealth", "message", 3, "string", false},
		{"RegisterRequest", "component", 1, "flowctl.v1.ComponentInfo", false},
		{"RegisterRequest", "component_id", 2, "string", false},
		{"RegisterResponse", "service_id", 1, "string", false},
		{"RegisterResponse", "assigned_topics", 2, "string", true},
		{"RegisterResponse", "connection_info", 3, "map", false},
		{"UnregisterRequest", "service_id", 1, "string", false},
		{"DiscoveryRequest", "type", 1, "enum", false},
		{"DiscoveryRequest", "event_types", 2, "string", true},
		{"DiscoveryRequest", "metadata_filters", 3, "map", false},
		{"DiscoveryResponse", "components", 1, "flowctl.v1.ComponentInfo", true},
		{"HeartbeatRequest", "service_id", 1, "string", false},
		{"HeartbeatRequest", "status", 2, "enum", false},
		{"HeartbeatRequest", "metrics", 3, "map", false},
		{"ComponentStatusRequest", "service_id", 1, "string", false},
		{"ComponentStatusResponse", "component", 1, "flowctl.v1.ComponentInfo", false},
		{"ComponentStatusResponse", "status", 2, "enum", false},
		{"ComponentStatusResponse", "last_heartbeat", 3, ts, false},
		{"ComponentStatusResponse", "metrics", 4, "map", false},
		{"ComponentStatusResponse", "registered_at", 5, ts, false},
		{"ListComponentsRequest", "type_filter", 1, "enum", false},
		{"ListComponentsRequest", "include_unhealthy", 2, "bool", false},
		{"ListComponentsResponse", "components", 1, "flowctl.v1.ComponentStatusResponse", true},
		{"StreamRequest", "params", 1, "map", false},
		{"StreamRequest", "resume", 2, "bool", false},
		{"StreamRequest", "resume_token", 3, "string", false},
		{"StateRequest", "key", 1, "string", false},
		{"StateResponse", "state", 1, "map", false},
		{"StateResponse", "resume_token", 2, "string", false},
		{"StateResponse", "last_updated_unix", 3, "int64", false},
		{"SaveStateRequest", "state", 1, "map", false},
		{"SaveStateRequest", "key", 2, "string", false},
		{"ConsumeResponse", "events_consumed", 1, "int64", false},
		{"ConsumeResponse", "events_failed", 2, "int64", false},
		{"ConsumeResponse", "errors", 3, "string", true},
	}
	fd := flowctlv1.File_flowctl_v1_flowctl_proto
	if got := string(fd.Package()); got != "flowctl.v1" {
		t.Fatalf("package = %q, want flowctl.v1", got)
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
			var kind string
			switch {
			case f.IsMap():
				kind = "map"
			case f.Kind() == protoreflect.MessageKind:
				kind = string(f.Message().FullName())
			default:
				kind = f.Kind().String()
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
		"ComponentType": {"COMPONENT_TYPE_UNSPECIFIED", "COMPONENT_TYPE_SOURCE", "COMPONENT_TYPE_PROCESSOR", "COMPONENT_TYPE_CONSUMER"},
		"HealthStatus": {"HEALTH_STATUS_UNKNOWN", "HEALTH_STATUS_STARTING", "HEALTH_STATUS_HEALTHY",
			"HEALTH_STATUS_DEGRADED", "HEALTH_STATUS_UNHEALTHY", "HEALTH_STATUS_STOPPING"},
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
		"ControlPlaneService": "RegisterComponent(RegisterRequest)RegisterResponse UnregisterComponent(UnregisterRequest)Empty DiscoverComponents(DiscoveryRequest)DiscoveryResponse Heartbeat(HeartbeatRequest)Empty GetComponentStatus(ComponentStatusRequest)ComponentStatusResponse ListComponents(ListComponentsRequest)ListComponentsResponse",
		"SourceService":       "GetInfo(Empty)ComponentInfo HealthCheck(HealthCheckRequest)HealthCheckResponse StreamEvents(StreamRequest)stream:Event GetState(StateRequest)StateResponse SaveState(SaveStateRequest)Empty",
		"ProcessorService":    "GetInfo(Empty)ComponentInfo HealthCheck(HealthCheckRequest)HealthCheckResponse Process(stream:Event)stream:Event",
		"ConsumerService":     "GetInfo(Empty)ComponentInfo HealthCheck(HealthCheckRequest)HealthCheckResponse Consume(stream:Event)ConsumeResponse",
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

// TestHealthStatusMatchesV1 keeps the native HealthStatus numbers equal to
// flowctl.v1's, which the control plane relies on to map one to the other
// by number.
func TestHealthStatusMatchesV1(t *testing.T) {
	for n, name := range flowctlv1.HealthStatus_name {
		if got := streamv1.HealthStatus_name[n]; got != name {
			t.Errorf("HealthStatus %d: stream.v1 %q, flowctl.v1 %q", n, got, name)
		}
	}
}
