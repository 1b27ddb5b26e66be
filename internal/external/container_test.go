package external

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/spec"
)

func TestContainerTask(t *testing.T) {
	rt := &Runtime{Pipeline: "pay", Dir: "/pipelines"}
	env := map[string]string{"B": "2", "A": "1"}
	for _, tc := range []struct {
		name string
		c    spec.Component
		want drivers.TaskConfig
	}{
		{
			name: "image only",
			c:    spec.Component{Name: "p", Image: "acme/p:1"},
			want: drivers.TaskConfig{Image: "acme/p:1"},
		},
		{
			name: "command replaces the entrypoint, args follow it",
			c:    spec.Component{Name: "p", Image: "acme/p:1", Command: []string{"/bin/p", "-x"}, Args: []string{"--y"}, WorkingDir: "/work"},
			want: drivers.TaskConfig{Image: "acme/p:1", Argv: []string{"/bin/p", "-x", "--y"}, Dir: "/work"},
		},
		{
			name: "args alone go to the image's entrypoint",
			c:    spec.Component{Name: "p", Image: "acme/p:1", Args: []string{"--y"}},
			want: drivers.TaskConfig{Image: "acme/p:1", ImageArgs: []string{"--y"}},
		},
		{
			name: "volumes and secrets",
			c: spec.Component{Name: "p", Image: "acme/p:1",
				Volumes: []spec.Volume{
					{HostPath: "data", ContainerPath: "/data", ReadOnly: true},
					{HostPath: "/abs", MountPath: "/m"},
					{Name: "cache", MountPath: "/cache"},
				},
				Secrets: []spec.Secret{{Name: "key", HostPath: "/etc/key.pem", ContainerPath: "/run/key.pem"}},
			},
			want: drivers.TaskConfig{Image: "acme/p:1", Mounts: []drivers.Mount{
				{Source: filepath.Join("/pipelines", "data"), Target: "/data", ReadOnly: true},
				{Source: "/abs", Target: "/m"},
				{Source: "cache", Target: "/cache", Volume: true},
				{Source: "/etc/key.pem", Target: "/run/key.pem", ReadOnly: true},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got drivers.TaskConfig
			if err := containerTask(rt, &tc.c, env, &got); err != nil {
				t.Fatal(err)
			}
			tc.want.Env = []string{"A=1", "B=2"}
			tc.want.Labels = map[string]string{"flowctl.pipeline": "pay", "flowctl.component": "p"}
			if tc.want.ImageArgs == nil {
				tc.want.ImageArgs = got.ImageArgs // nil or empty: both mean none
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestContainerMountErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    spec.Component
		want string
	}{
		{"no target", spec.Component{Volumes: []spec.Volume{{HostPath: "/x"}}}, "volumes[0]: no container_path"},
		{"relative target", spec.Component{Volumes: []spec.Volume{{HostPath: "/x", ContainerPath: "data"}}}, `container_path "data" is not absolute`},
		{"nothing to mount", spec.Component{Volumes: []spec.Volume{{ContainerPath: "/data"}}}, "neither host_path nor name"},
		{"env secret", spec.Component{Secrets: []spec.Secret{{Name: "k", Env: "KEY"}}}, "secrets[0]: a secret for a container under flowctl run is a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Name, tc.c.Image, tc.c.Runner = "p", "acme/p:1", spec.RunContainer
			tc.c.Positions = map[string]spec.Pos{"volumes[0]": {Line: 7, Col: 9}}
			err := Check(&tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v; want %q", err, tc.want)
			}
			if len(tc.c.Volumes) > 0 && !strings.HasPrefix(err.Error(), "line 7 col 9: ") {
				t.Errorf("error %q does not say where", err)
			}
			if len(tc.c.Secrets) > 0 && !errors.Is(err, ErrContainerField) {
				t.Errorf("error %v is not ErrContainerField", err)
			}
		})
	}
}
