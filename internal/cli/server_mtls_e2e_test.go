package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// listenSocket is one listening TCP socket of a process, from /proc.
type listenSocket struct {
	inode uint64
	ip    net.IP
	port  int
	table string // "tcp" or "tcp6"
}

func (s listenSocket) String() string {
	return fmt.Sprintf("%s %s (inode %d)", s.table, net.JoinHostPort(s.ip.String(), strconv.Itoa(s.port)), s.inode)
}

// socketInodes returns the inodes of the sockets pid has open, from the
// "socket:[INODE]" links in /proc/PID/fd.
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list the descriptors of %d: %w", pid, err)
	}
	inodes := map[uint64]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		rest, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
			inodes[n] = true
		}
	}
	return inodes, nil
}

// decodeProcAddr decodes a local_address of /proc/net/tcp{,6}: the address
// in hex as 32-bit words in host (little-endian) byte order, then the port
// in hex.
func decodeProcAddr(s string) (net.IP, int, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("address %q: no port", s)
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, fmt.Errorf("address %q: not 4 or 16 hex bytes", s)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(ip[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("address %q: port: %w", s, err)
	}
	return ip, int(p), nil
}

// listeningSockets lists pid's TCP sockets in state LISTEN (0A): its socket
// inodes matched against /proc/PID/net/tcp and tcp6.
func listeningSockets(pid int) ([]listenSocket, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []listenSocket
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			if table == "tcp6" && errors.Is(err, os.ErrNotExist) {
				continue // no IPv6 in this kernel
			}
			return nil, fmt.Errorf("read the %s table of %d: %w", table, pid, err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			inode, err := strconv.ParseUint(fs[9], 10, 64)
			if err != nil || !inodes[inode] {
				continue
			}
			ip, port, err := decodeProcAddr(fs[1])
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s table of %d: %w", table, pid, err)
			}
			out = append(out, listenSocket{inode: inode, ip: ip, port: port, table: table})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read the %s table of %d: %w", table, pid, err)
		}
	}
	return out, nil
}

// TestDecodeProcAddr checks the /proc/net/tcp{,6} address decoding on
// known values.
func TestDecodeProcAddr(t *testing.T) {
	tests := []struct {
		in   string
		ip   string
		port int
	}{
		{"0100007F:1F90", "127.0.0.1", 8080},
		{"00000000:0016", "0.0.0.0", 22},
		{"0101A8C0:01BB", "192.168.1.1", 443},
		{"00000000000000000000000001000000:1F90", "::1", 8080},
		{"00000000000000000000000000000000:0050", "::", 80},
		{"0000000000000000FFFF00000100007F:0050", "::ffff:127.0.0.1", 80},
		{"B80D0120000000000000000001000000:0050", "2001:db8::1", 80},
	}
	for _, tt := range tests {
		ip, port, err := decodeProcAddr(tt.in)
		if err != nil {
			t.Errorf("decodeProcAddr(%q): %v", tt.in, err)
			continue
		}
		if !ip.Equal(net.ParseIP(tt.ip)) || port != tt.port {
			t.Errorf("decodeProcAddr(%q) = %s, %d; want %s, %d", tt.in, ip, port, tt.ip, tt.port)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0050", "0100007F:zz", "01007F:0050"} {
		if _, _, err := decodeProcAddr(bad); err == nil {
			t.Errorf("decodeProcAddr(%q) = nil error", bad)
		}
	}
}

// dialTargets are the addresses a client uses to reach s: the address
// itself, or loopback for a wildcard (both families for a dual-stack ::).
func dialTargets(s listenSocket) []string {
	port := strconv.Itoa(s.port)
	switch {
	case s.ip.Equal(net.IPv4zero):
		return []string{net.JoinHostPort("127.0.0.1", port)}
	case s.ip.Equal(net.IPv6unspecified):
		out := []string{net.JoinHostPort("::1", port)}
		if b, err := os.ReadFile("/proc/sys/net/ipv6/bindv6only"); err == nil && strings.TrimSpace(string(b)) == "0" {
			out = append(out, net.JoinHostPort("127.0.0.1", port))
		}
		return out
	}
	return []string{net.JoinHostPort(s.ip.String(), port)}
}

// sdkProcessorBinary builds examples/sdk-processor (a gRPC component made
// with the Go SDK) once per test binary.
var (
	sdkBinOnce sync.Once
	sdkBinPath string
	sdkBinErr  error
)

func sdkProcessorBinary(t *testing.T) string {
	t.Helper()
	sdkBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowctl-sdkproc")
		if err != nil {
			sdkBinErr = err
			return
		}
		sdkBinPath = filepath.Join(dir, "sdk-processor")
		out, err := exec.Command("go", "build", "-o", sdkBinPath, "github.com/flowctl/flowctl/examples/sdk-processor").CombinedOutput()
		if err != nil {
			sdkBinErr = fmt.Errorf("go build sdk-processor: %v\n%s", err, out)
		}
	})
	if sdkBinErr != nil {
		t.Fatal(sdkBinErr)
	}
	return sdkBinPath
}

var servingOn = regexp.MustCompile(`flowctl server: serving on (\S+) `)

// startMTLSServer starts `flowctl server` with mutual TLS on listen (port
// 0: the kernel picks it) and returns it with the address it bound. Its
// children present the bundle's client certificate: named by flags when
// childFlags, else found beside the server's (the `certs init` layout).
func startMTLSServer(t *testing.T, bin, listen, dataDir string, b *tlstest.Bundle, childFlags bool) *serverProc {
	t.Helper()
	sp := &serverProc{out: &syncBuffer{}, done: make(chan struct{})}
	args := []string{"server", "--listen", listen, "--data-dir", dataDir, "--grace", "2s", "--log-level", "debug",
		"--tls-cert", b.Files.ServerCert, "--tls-key", b.Files.ServerKey, "--tls-client-ca", b.Files.CACert}
	if childFlags {
		args = append(args, "--tls-child-cert", b.Files.ClientCert, "--tls-child-key", b.Files.ClientKey)
	}
	sp.cmd = exec.Command(bin, args...)
	sp.cmd.Stdout, sp.cmd.Stderr = sp.out, sp.out
	if err := sp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = sp.cmd.Wait(); close(sp.done) }()
	t.Cleanup(func() {
		// SIGTERM drains the children (and their components); SIGKILL if
		// that takes too long.
		_ = sp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sp.done:
		case <-time.After(10 * time.Second):
			_ = sp.cmd.Process.Kill()
			<-sp.done
		}
		if t.Failed() {
			t.Logf("server %s output:\n%s", sp.addr, sp.out.String())
		}
	})
	waitFor(t, 15*time.Second, "the server to say where it serves", func() bool {
		if m := servingOn.FindStringSubmatch(sp.out.String()); m != nil {
			sp.addr = m[1]
			return true
		}
		select {
		case <-sp.done:
			t.Fatalf("the server exited:\n%s", sp.out.String())
		default:
		}
		return false
	})
	return sp
}

// mtlsStatus makes a Status RPC to addr over a fresh connection with the
// given transport credentials.
func mtlsStatus(addr string, creds credentials.TransportCredentials) (*controlv1.StatusResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return controlv1.NewStatusServiceClient(conn).Status(ctx, &controlv1.StatusRequest{})
}

// rawTLS handshakes with addr, then reads: a server that refuses the
// client certificate answers with a TLS alert, in the handshake (TLS 1.2)
// or on the first read (TLS 1.3, where the client finishes first). It
// returns that alert's error, or nil when the connection stayed up.
func rawTLS(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 64)
	for {
		_, err := conn.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue // the server's HTTP/2 settings: it accepted us
		case errors.As(err, &ne) && ne.Timeout():
			return nil
		default:
			return err
		}
	}
}

// isTLSAlert reports whether err is a TLS alert the peer sent.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && strings.HasPrefix(oe.Err.Error(), "tls: ")
}

const mtlsPipeline = `name: mtls
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 20, data: {amount: 1250, kind: tick}}
processors:
  - name: usd
    command: [%q]
    protocol: grpc
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [usd]
    config: {path: mtls.jsonl}
`

// TestServerMTLSListeners is the mTLS check of issue 5: `flowctl server`
// runs with mutual TLS as a real process with a pipeline applied through
// the CLI (a `flowctl run` child with a gRPC component made with the SDK,
// so every listener the server and its children open exists). Every TCP
// socket the server listens on, read from /proc, refuses a client without
// a certificate, one with a certificate of another CA and a plaintext one,
// and serves the right certificate; the children listen on loopback only.
func TestServerMTLSListeners(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skipf("needs /proc to list listening sockets: %v", err)
	}
	bin := flowctlBinary(t)
	proc := sdkProcessorBinary(t)
	b := tlstest.New(t)

	ipv6 := false
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l.Close()
		ipv6 = true
	}
	tests := []struct {
		name, listen string
		ipv6         bool
		childFlags   bool
	}{
		{"loopback", "127.0.0.1:0", false, false},
		{"wildcard", "[::]:0", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ipv6 && !ipv6 {
				t.Skip("no IPv6 loopback")
			}
			testMTLSListeners(t, bin, proc, b, tc.listen, tc.childFlags)
		})
	}
}

// testMTLSListeners runs one case of TestServerMTLSListeners: the server
// listens on listen.
func testMTLSListeners(t *testing.T, bin, proc string, b *tlstest.Bundle, listen string, childFlags bool) {
	work := t.TempDir()
	sp := startMTLSServer(t, bin, listen, t.TempDir(), b, childFlags)
	good := b.ClientConfig(t, b.ClientOptions())
	noCert := b.ClientConfig(t, b.NoCertClientOptions())
	other := forceClientCert(b.ClientConfig(t, b.OtherClientOptions()))

	// The server's own address may be a wildcard: reach it on loopback.
	host, port, err := net.SplitHostPort(sp.addr)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	addr := net.JoinHostPort(host, port)
	waitFor(t, 15*time.Second, "the server to answer Status over mTLS", func() bool {
		st, err := mtlsStatus(addr, credentials.NewTLS(good.Clone()))
		return err == nil && st.GetTls() && st.GetMtls()
	})

	// Apply through the CLI with the right certificate; the child and its
	// component run.
	conn := []string{"--server", addr, "--tls-ca", b.Files.CACert, "--tls-cert", b.Files.ClientCert, "--tls-key", b.Files.ClientKey}
	file := filepath.Join(work, "mtls.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(mtlsPipeline, proc)), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli(append([]string{"apply", "-f", file, "--wait", "--timeout", "20s"}, conn...)...); err != nil {
		t.Fatalf("flowctl apply: %v\n%s", err, out)
	}
	waitFor(t, 15*time.Second, "output through the SDK processor", func() bool { return countLines(filepath.Join(work, "mtls.jsonl")) >= 3 })

	// The CLI itself is refused without the right certificate. (Given
	// another CA's certificate, the Go client sends none: the server names
	// the CAs it accepts. The probes below force it.)
	for _, bad := range []struct{ name, cert, key string }{
		{"no client certificate", "", ""},
		{"another CA's certificate", b.OtherClientCert, b.OtherClientKey},
	} {
		args := []string{"get", "pipelines", "--server", addr, "--tls-ca", b.Files.CACert}
		if bad.cert != "" {
			args = append(args, "--tls-cert", bad.cert, "--tls-key", bad.key)
		}
		if out, err := cli(args...); err == nil {
			t.Errorf("flowctl get pipelines with %s succeeded:\n%s", bad.name, out)
		} else {
			t.Logf("flowctl get pipelines with %s: %s", bad.name, strings.TrimSpace(out))
		}
	}

	// 1. The server's listening sockets, from /proc.
	serverPID := sp.cmd.Process.Pid
	socks, err := listeningSockets(serverPID)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) == 0 {
		t.Fatalf("server %d has no listening socket in /proc", serverPID)
	}
	t.Logf("server %d listens on %v", serverPID, socks)
	serverInodes := map[uint64]bool{}
	found := false
	for _, s := range socks {
		serverInodes[s.inode] = true
		found = found || strconv.Itoa(s.port) == port
	}
	if !found {
		t.Errorf("no listening socket of the server has the port it serves on (%s)", sp.addr)
	}

	// 2. On every one: no certificate, another CA's and plaintext are
	// refused, the right certificate is served.
	for _, s := range socks {
		for _, target := range dialTargets(s) {
			probeMTLS(t, s, target, good, noCert, other)
		}
	}

	// 3. The server's children: the `flowctl run` of the pipeline (its pid
	// is in the components' metadata) and below it the SDK processor.
	out, err := cli(append([]string{"get", "components", "mtls", "-o", "json"}, conn...)...)
	if err != nil {
		t.Fatalf("flowctl get components: %v\n%s", err, out)
	}
	var doc struct {
		Items []struct {
			Registration struct {
				ID       string            `json:"id"`
				Metadata map[string]string `json:"metadata"`
			} `json:"registration"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("get components -o json: %v\n%s", err, out)
	}
	var metaPIDs []int
	for _, it := range doc.Items {
		if p, err := strconv.Atoi(it.Registration.Metadata[report.MetaPID]); err == nil && !slices.Contains(metaPIDs, p) {
			metaPIDs = append(metaPIDs, p)
		}
	}
	children := childrenOf(serverPID)
	if len(metaPIDs) == 0 || len(children) == 0 {
		t.Fatalf("components' pids %v, server's children %v: want the pipeline's child in both\n%s", metaPIDs, children, out)
	}
	for _, p := range metaPIDs {
		if !slices.Contains(children, p) {
			t.Errorf("component pid %d is not a child of the server (children %v)", p, children)
		}
	}
	for _, child := range children {
		checkLoopbackOnly(t, "child", child, serverInodes)
		for _, gc := range procDescendants(child) {
			checkLoopbackOnly(t, "grandchild", gc, serverInodes)
		}
	}
}

// probeMTLS checks one listening socket s, reached at target.
func probeMTLS(t *testing.T, s listenSocket, target string, good, noCert, other *tls.Config) {
	t.Helper()
	refused := []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"no client certificate", credentials.NewTLS(noCert.Clone())},
		{"another CA's client certificate", credentials.NewTLS(other.Clone())},
		{"plaintext", insecure.NewCredentials()},
	}
	for _, r := range refused {
		_, err := mtlsStatus(target, r.creds)
		if err == nil {
			t.Errorf("%s at %s: Status with %s succeeded, want refused", s, target, r.name)
			continue
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s at %s: Status with %s = %v, want Unavailable (refused at the transport)", s, target, r.name, err)
		}
		t.Logf("%s at %s: %s refused: %v", s, target, r.name, err)
	}
	if st, err := mtlsStatus(target, credentials.NewTLS(good.Clone())); err != nil {
		t.Errorf("%s at %s: Status with the right certificate: %v", s, target, err)
	} else if !st.GetMtls() {
		t.Errorf("%s at %s: Status says mtls=false", s, target)
	}

	// The same at the TLS layer, without gRPC.
	host, _, _ := net.SplitHostPort(target)
	for _, r := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", noCert},
		{"another CA's client certificate", other},
	} {
		cfg := r.cfg.Clone()
		cfg.ServerName, cfg.NextProtos = host, []string{"h2"}
		err := rawTLS(target, cfg)
		if !isTLSAlert(err) {
			t.Errorf("%s at %s: TLS with %s: %v, want a TLS alert from the server", s, target, r.name, err)
			continue
		}
		t.Logf("%s at %s: TLS with %s: %v", s, target, r.name, err)
	}
	cfg := good.Clone()
	cfg.ServerName, cfg.NextProtos = host, []string{"h2"}
	if err := rawTLS(target, cfg); err != nil {
		t.Errorf("%s at %s: TLS with the right certificate: %v", s, target, err)
	}
}

// forceClientCert makes cfg present its certificate whatever CAs the
// server names as acceptable: by default a Go client whose certificate no
// acceptable CA issued sends none, and the server would only see a client
// without a certificate, never verify (and refuse) a foreign chain.
func forceClientCert(cfg *tls.Config) *tls.Config {
	cert := cfg.Certificates[0]
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}

// procDescendants lists every process below pid.
func procDescendants(pid int) []int {
	var out []int
	for _, c := range childrenOf(pid) {
		out = append(out, c)
		out = append(out, procDescendants(c)...)
	}
	return out
}

// procComm is the command name of pid ("?" when gone).
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// checkLoopbackOnly fails the test when pid listens on anything but
// loopback or holds one of the server's listening sockets (leaked to it
// with the descriptors), and logs what it listens on.
func checkLoopbackOnly(t *testing.T, what string, pid int, serverInodes map[uint64]bool) {
	t.Helper()
	socks, err := listeningSockets(pid)
	if err != nil {
		if !pidAlive(pid) {
			return
		}
		t.Errorf("%s %d: %v", what, pid, err)
		return
	}
	if len(socks) == 0 {
		t.Logf("%s %d (%s) listens on nothing", what, pid, procComm(pid))
	}
	for _, s := range socks {
		kind := "plaintext gRPC"
		if _, err := speaksPlainGRPC(s); err != nil {
			kind = "not plaintext gRPC: " + err.Error()
		}
		t.Logf("%s %d (%s) listens on %s: %s", what, pid, procComm(pid), s, kind)
		switch {
		case serverInodes[s.inode]:
			t.Errorf("%s %d (%s) holds the server's listening socket %s", what, pid, procComm(pid), s)
		case s.ip.IsLoopback():
		case what == "grandchild" && s.port == procHealthPort(pid) && servesHealth(s):
			// A component's HEALTH_PORT is a bare port number (the
			// flowctl.v1 contract) and the SDK binds it on every
			// interface (containers publish it): an unauthenticated
			// GET /health that says "ok" or "draining". Not the control
			// plane; noted, not failed.
			t.Logf("NOTE: %s %d (%s) serves GET /health on %s, every interface (HEALTH_PORT)", what, pid, procComm(pid), s)
		default:
			t.Errorf("%s %d (%s) listens on %s: not loopback", what, pid, procComm(pid), s)
		}
	}
}

// procHealthPort is the HEALTH_PORT in pid's environment (0 when none).
func procHealthPort(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return 0
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "HEALTH_PORT="); ok {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				port = v
			}
			n, _ := strconv.Atoi(port)
			return n
		}
	}
	return 0
}

// servesHealth says whether s answers GET /health over plain HTTP and
// nothing else: another path is not found.
func servesHealth(s listenSocket) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	base := "http://" + dialTargets(s)[0]
	resp, err := c.Get(base + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	other, err := c.Get(base + "/flowctl.control.v1.StatusService/Status")
	if err != nil {
		return false
	}
	other.Body.Close()
	return resp.StatusCode/100 == 2 && other.StatusCode == http.StatusNotFound
}

// speaksPlainGRPC says whether s speaks gRPC in plaintext: it opens a
// plaintext HTTP/2 connection and waits until it is ready.
func speaksPlainGRPC(s listenSocket) (bool, error) {
	targets := dialTargets(s)
	conn, err := grpc.NewClient(targets[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Connect()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			return true, nil
		}
		if !conn.WaitForStateChange(ctx, st) {
			return false, fmt.Errorf("no HTTP/2 (state %s)", st)
		}
	}
}
