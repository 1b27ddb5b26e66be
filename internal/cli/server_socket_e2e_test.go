//go:build linux

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// envRegister makes the test binary a one-shot component registration:
// it registers the id in the variable's value ("unix:PATH id") with the
// native and the flowctl.v1 control plane, prints both outcomes and exits
// 0 only if both were accepted.
const envRegister = "FLOWCTL_TEST_REGISTER"

func registerOnce(v string) int {
	addr, id, _ := strings.Cut(v, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("dial:", err)
		return 2
	}
	defer conn.Close()
	_, nerr := streamv1.NewControlPlaneServiceClient(conn).Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{
		Id: id, Role: streamv1.Role_ROLE_PROCESSOR, Endpoint: "127.0.0.1:9"}})
	_, verr := flowctlv1.NewControlPlaneServiceClient(conn).RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: id + "-v1",
		Component: &flowctlv1.ComponentInfo{Id: id + "-v1", Endpoint: "127.0.0.1:9"}})
	fmt.Printf("native: %s\nv1: %s\n", status.Convert(nerr).Message(), status.Convert(verr).Message())
	if nerr != nil || verr != nil {
		return 3
	}
	return 0
}

// copyExecutable copies src into dir (which others may enter) as an
// executable any user may run.
func copyExecutable(t *testing.T, src, dir string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestServerSocketRefusesOtherUsers starts the real `flowctl server` as
// root on its default socket and checks that the user nobody can neither
// apply, get nor delete pipelines nor register a component (the socket
// refuses the connection: permission denied), while root — finding the
// socket with no --server at all — can.
func TestServerSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts a server that another uid (nobody) must be refused by")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to run commands as nobody")
	}
	// Everything nobody must reach (binaries, the pipeline file) lives in
	// a directory it may enter; the server's data dir inside is 0700.
	base, err := os.MkdirTemp("", "fsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(base, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyExecutable(t, flowctlBinary(t), binDir)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testBin := copyExecutable(t, self, binDir)
	dataDir := filepath.Join(base, "flowctl") // the default under XDG_STATE_HOME=base
	sock := socketOf(dataDir)
	pipeline := filepath.Join(base, "whoami.yaml")
	writeFileAt(t, pipeline, `name: whoami
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 5, data: {n: 1}}
sinks:
  - name: out
    type: drop
    inputs: [gen]
`)
	env := append(os.Environ(), "XDG_STATE_HOME="+base, "FLOWCTL_CONFIG="+filepath.Join(base, "no-config.yaml"),
		"FLOWCTL_SERVER=", "FLOWCTL_CONTEXT=", "FLOWCTL_TOKEN=", "HOME="+base)

	sp := startServerProc(t, bin, dataDir)
	if st, err := os.Stat(strings.TrimPrefix(sock, "unix:")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", sock, err, st.Mode())
	}
	if st, err := os.Stat(dataDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, mode %v; want 0700", err, st.Mode())
	}

	run := func(asNobody bool, args ...string) (int, string) {
		t.Helper()
		argv := append([]string{bin}, args...)
		if asNobody {
			argv = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, argv...)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%v: %v", argv, err)
		return 0, ""
	}
	refused := func(what string, code int, out string) {
		t.Helper()
		t.Logf("nobody: %s: exit %d: %s", what, code, strings.TrimSpace(out))
		if code == 0 || !(strings.Contains(out, "permission denied") || strings.Contains(out, "connection refused")) {
			t.Errorf("nobody: %s: exit %d, want refused (permission denied):\n%s", what, code, out)
		}
		if strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("nobody: %s: the refusal is not one line:\n%s", what, out)
		}
	}

	// The other user: refused at the socket, for every command, even when
	// it names the socket explicitly.
	code, out := run(true, "apply", "-f", pipeline, "--server", sock)
	refused("apply", code, out)
	code, out = run(true, "get", "pipelines", "--server", sock)
	refused("get", code, out)
	code, out = run(true, "delete", "pipeline", "whoami", "--server", sock)
	refused("delete", code, out)
	reg := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", testBin)
	reg.Env = append(os.Environ(), envRegister+"="+sock+" intruder")
	regOut, err := reg.CombinedOutput()
	t.Logf("nobody: register: %v: %s", err, regOut)
	if err == nil || !strings.Contains(string(regOut), "permission denied") {
		t.Errorf("nobody registering a component: %v, want refused with permission denied:\n%s", err, regOut)
	}

	// Root, with no --server: the default socket.
	if code, out := run(false, "apply", "-f", pipeline, "--wait", "--timeout", "30s"); code != 0 {
		t.Fatalf("root apply: exit %d\n%s", code, out)
	}
	if code, out := run(false, "get", "pipelines"); code != 0 || !strings.Contains(out, "whoami") {
		t.Fatalf("root get: exit %d\n%s", code, out)
	}
	if code, out := run(false, "status"); code != 0 || !strings.Contains(out, "Unix socket") {
		t.Errorf("root status: exit %d, want it to say the Unix socket secures it\n%s", code, out)
	}
	reg = exec.Command(testBin)
	reg.Env = append(os.Environ(), envRegister+"="+sock+" rooted")
	if regOut, err := reg.CombinedOutput(); err != nil {
		t.Errorf("root registering a component: %v\n%s", err, regOut)
	}
	if code, out := run(false, "get", "components"); code != 0 || !strings.Contains(out, "rooted") || strings.Contains(out, "intruder") {
		t.Errorf("root get components: exit %d, want rooted and no intruder\n%s", code, out)
	}
	if code, out := run(false, "delete", "pipeline", "whoami"); code != 0 {
		t.Fatalf("root delete: exit %d\n%s", code, out)
	}
	_ = sp
}
